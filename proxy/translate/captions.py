"""Live captions: the user's words as Deepgram listen `Results` (a P6 compatibility extra).

The agent protocol gives the client the user's words only once, as the
`ConversationText` of a finished turn. Browser components (dg_react_agent's
`onTranscriptUpdate`, its "Live Transcript" panel and mic-activity indicator)
fill their live transcript from listen-API transcripts instead, so the proxy
also sends those: an interim `Results` (`is_final: false`) for each
`conversation.item.input_audio_transcription.delta`, carrying the text
accumulated so far for that item (a listen client replaces its interim
caption with each one), and a final one (`is_final` and `speech_final`) for
`.completed`, which the session sends after the user's `ConversationText`:
the component de-duplicates a final caption against the last history line,
so sent before it the line would show twice.

Pure book-keeping: fed upstream facts, returns messages; no clock, no I/O.
"""

from __future__ import annotations

import uuid

import attrs

from ..protocol import deepgram as dg

# Listen `Results` name the channel as [index, count], like UtteranceEnd (P6).
CHANNEL = (0, 1)
# OpenAI reports no confidence for a transcript (only token logprobs, which the
# session does not ask for); the listen schema requires one. 1.0 = "as given".
CONFIDENCE = 1.0
# Bounds, so an upstream that never completes (or never stops sending deltas
# for) an item cannot grow memory: items are forgotten oldest first, and an
# item's text stops growing at this size. A spoken turn is a few hundred
# characters; server VAD completes or fails every item it commits.
MAX_OPEN_ITEMS = 16
MAX_TEXT_CHARS = 16 * 1024


@attrs.define
class _Utterance:
    start_ms: int | None = None
    end_ms: int | None = None
    text: str = ""


class Captions:
    """The open user items of one connection and the `Results` they produce."""

    def __init__(self, request_id: str, model: str) -> None:
        self._metadata = dg.ResultsMetadata(
            request_id=request_id,
            model_info=dg.ModelInfo(name=model, version="", arch=""),
            # Stable per model name, so a client can tell models apart the way
            # it would Deepgram's.
            model_uuid=str(uuid.uuid5(uuid.NAMESPACE_URL, f"openai-transcription:{model}")),
        )
        self._items: dict[str, _Utterance] = {}

    def speech_started(self, item_id: str | None, audio_start_ms: int) -> None:
        if item_id is not None:
            self._item(item_id).start_ms = audio_start_ms

    def speech_stopped(self, item_id: str | None, audio_end_ms: int) -> None:
        if item_id is not None:
            self._item(item_id).end_ms = audio_end_ms

    def interim(self, item_id: str, delta: str | None) -> dg.Results | None:
        """A transcription delta -> interim Results with the item's text so far (None: nothing new)."""
        if not delta:
            return None
        item = self._item(item_id)
        if len(item.text) >= MAX_TEXT_CHARS:
            return None
        item.text = (item.text + delta)[:MAX_TEXT_CHARS]
        return self._results(item, item.text, final=False)

    def final(self, item_id: str, transcript: str) -> dg.Results:
        """The completed transcript -> final Results; the item is done."""
        item = self._items.pop(item_id, None) or _Utterance()
        return self._results(item, transcript, final=True)

    def forget(self, item_id: str) -> None:
        """The item's transcription failed: no final caption will come."""
        self._items.pop(item_id, None)

    def _item(self, item_id: str) -> _Utterance:
        item = self._items.get(item_id)
        if item is None:
            if len(self._items) >= MAX_OPEN_ITEMS:
                del self._items[next(iter(self._items))]
            item = self._items[item_id] = _Utterance()
        return item

    def _results(self, item: _Utterance, transcript: str, *, final: bool) -> dg.Results:
        # The listen API times a result from the start of the audio stream;
        # server VAD gives exactly that (audio_start_ms / audio_end_ms). Unknown
        # (no VAD events seen yet) counts as 0.
        start_ms = item.start_ms or 0
        duration_ms = max(0, item.end_ms - start_ms) if item.end_ms is not None else 0
        return dg.Results(
            channel_index=CHANNEL,
            duration=duration_ms / 1000,
            start=start_ms / 1000,
            is_final=final,
            speech_final=final,
            channel=dg.ResultsChannel(alternatives=(dg.ResultsAlternative(transcript=transcript, confidence=CONFIDENCE),)),
            metadata=self._metadata,
        )
