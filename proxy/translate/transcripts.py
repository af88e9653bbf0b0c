"""The live API's order, as a Deepgram client expects it: question before answer.

The upstream transcribes the user's audio on its own schedule, often after
the agent's reply is done, so passed on as it comes a client would see
`ConversationText(assistant)` before the `ConversationText(user)` it
answers. Clients that keep history in arrival order (and send it back as
context on reconnect) would store the answer first; Deepgram never sends
that order.

So the assistant's `ConversationText` of a response (never its audio) is
held while a user audio item committed before that response was created
still has no transcript, and released, in order, once the transcript was
sent. The hold is bounded: `transcript_wait_s` after the first held text, or
on `conversation.item.input_audio_transcription.failed`, the client gets a
`Warning` (`TRANSCRIPT_LATE` / `TRANSCRIPT_FAILED`) and the held text goes;
a transcript that comes later is still sent.
"""

from __future__ import annotations

import logging

import attrs

from ..protocol import deepgram as dg
from .outbox import Outbox

TRANSCRIPT_TIMER = "transcript:"  # + the response id
# User items without a transcript are remembered at most this many: an
# upstream that never transcribes must not grow the set.
MAX_UNTRANSCRIBED = 32


@attrs.define
class _Held:
    waiting_for: set[str]  # user item ids
    texts: list[dg.ConversationText] = attrs.Factory(list)


class TranscriptOrder:
    def __init__(self, out: Outbox, log: logging.LoggerAdapter, *, wait_s: float) -> None:
        self._out = out
        self._log = log
        self._wait_s = wait_s
        self._untranscribed: dict[str, None] = {}  # ordered set of user item ids
        self._responses: dict[str, _Held] = {}  # in creation order

    def committed(self, item_id: str) -> None:
        """The user's audio became `item_id`: its transcript is now owed."""
        self._untranscribed[item_id] = None
        while len(self._untranscribed) > MAX_UNTRANSCRIBED:
            del self._untranscribed[next(iter(self._untranscribed))]

    def response_created(self, response_id: str) -> None:
        if self._untranscribed:
            self._responses[response_id] = _Held(set(self._untranscribed))

    def assistant_text(self, response_id: str, message: dg.ConversationText, now: float) -> None:
        held = self._responses.get(response_id)
        if held is None or not held.waiting_for:
            self._out.client(message)
            return
        if not held.texts:
            self._out.start_timer(TRANSCRIPT_TIMER + response_id, now + self._wait_s)
        held.texts.append(message)

    def response_done(self, response_id: str) -> None:
        held = self._responses.get(response_id)
        if held is not None and not held.texts:
            del self._responses[response_id]  # nothing was held: nothing to release later
            self._release()

    def transcribed(self, item_id: str, transcript: str) -> None:
        self._out.client(dg.ConversationText(role="user", content=transcript))
        self._settled(item_id)

    def failed(self, item_id: str, detail: str) -> None:
        self._out.warning("TRANSCRIPT_FAILED", f"the user's speech could not be transcribed: {detail}")
        self._settled(item_id)

    def deadline(self, timer_name: str) -> None:
        response_id = timer_name[len(TRANSCRIPT_TIMER):]
        held = self._responses.get(response_id)
        if held is None:
            return
        self._log.warning(
            "user transcript late; sending the agent's text without it",
            extra={"response_id": response_id, "missing_signal": "conversation.item.input_audio_transcription.completed"},
        )
        self._out.warning("TRANSCRIPT_LATE", "the user's transcript did not arrive in time; it follows the agent's reply")
        # Order is given up for these items: later responses do not wait for
        # them again, and their transcripts are sent whenever they come.
        for item_id in list(held.waiting_for):
            self._untranscribed.pop(item_id, None)
            for other in self._responses.values():
                other.waiting_for.discard(item_id)
        self._release()

    def _settled(self, item_id: str) -> None:
        self._untranscribed.pop(item_id, None)
        for held in self._responses.values():
            held.waiting_for.discard(item_id)
        self._release()

    def _release(self) -> None:
        """Send held texts, oldest response first, up to the first still waiting."""
        while self._responses:
            response_id, held = next(iter(self._responses.items()))
            if held.waiting_for:
                return
            del self._responses[response_id]
            if held.texts:
                self._out.cancel_timer(TRANSCRIPT_TIMER + response_id)
            for message in held.texts:
                self._out.client(message)
