"""The agent's side of a turn as the client sees it: audio, text, barge-in.

P6 rows for `response.output_audio.*`, `*.done` text and `response.done`'s
`AgentAudioDone`, P6.1 (one ConversationText per content part), P6.4
(latency figures) and P7 (barge-in truncation). `Session` routes each
upstream event here with the active response it belongs to; this part
never starts or ends a response itself.
"""

from __future__ import annotations

import binascii
import logging
from typing import Any

from ..protocol import deepgram as dg
from ..protocol import openai as oa
from .audio import AudioFormat
from .outbox import Outbox
from .settings import DEFAULT_OUTPUT
from .turns import ActiveResponse, AudioTrack


class AgentOutput:
    def __init__(self, out: Outbox, log: logging.LoggerAdapter) -> None:
        self._out = out
        self._log = log
        self.output_format: AudioFormat = DEFAULT_OUTPUT
        self._last_audio: AudioTrack | None = None  # P7: what may still be playing
        self._texts_sent: set[tuple[str, int]] = set()  # P6.1

    @property
    def texts_remembered(self) -> int:
        return len(self._texts_sent)

    def audio_delta(self, event: dict[str, Any], response: ActiveResponse, now: float) -> None:
        if response.interrupted:
            return  # P7: every later delta of an interrupted response is dropped
        try:
            audio = binascii.a2b_base64(event["delta"])
        except (KeyError, TypeError, binascii.Error):
            self._log.warning("dropped audio delta that is not base64", extra={"response_id": response.id})
            return
        if response.first_audio_at is None:
            response.first_audio_at = now
            response.audio_item_id = event.get("item_id")
            response.audio_content_index = event.get("content_index", 0)
            ttt = max(0.0, response.created_at - response.turn_end)  # P6.4
            tts = max(0.0, now - response.created_at)
            self._out.client(
                dg.AgentStartedSpeaking(total_latency=round(ttt + tts, 4), tts_latency=round(tts, 4), ttt_latency=round(ttt, 4))
            )
            # An out-of-band response's item is not in the conversation, so
            # there is nothing to truncate (P3.5, P7).
            if response.audio_item_id is not None and not response.out_of_band:
                self._last_audio = AudioTrack(
                    item_id=response.audio_item_id,
                    content_index=response.audio_content_index,
                    first_audio_at=now,
                    upstream_audio_bytes=0,
                    bytes_per_ms=self.output_format.upstream_bytes_per_ms,
                )
        response.upstream_audio_bytes += len(audio)
        if self._last_audio is not None and self._last_audio.item_id == response.audio_item_id:
            self._last_audio.upstream_audio_bytes = response.upstream_audio_bytes
        self._out.audio(response.output.feed(audio))

    def audio_done(self, response: ActiveResponse) -> None:
        """The resampler's tail goes out once per response, unless barged in."""
        if response.audio_flushed:
            return
        response.audio_flushed = True
        if not response.interrupted:
            self._out.audio(response.output.flush())

    def text(
        self, active: ActiveResponse | None, response_id: str, item_id: str, content_index: int, text: str
    ) -> dg.ConversationText | None:
        """The ConversationText to send for this part, or None (the caller decides when it goes)."""
        if active is not None and active.id == response_id and active.out_of_band:
            return None  # P3.5: the spoken greeting was already sent as ConversationText
        key = (item_id, content_index)
        if key in self._texts_sent:
            return None  # P6.1: one ConversationText per content part
        self._texts_sent.add(key)
        return dg.ConversationText(role="assistant", content=text)

    def ended(self, response: ActiveResponse) -> None:
        self.audio_done(response)
        self._out.client(dg.AgentAudioDone())  # exactly once per response (P6)
        # P6.1 pairs text and transcript within one response (response.done
        # comes after both), so the parts seen need not outlive it: without
        # this the set grows for as long as the connection lives.
        self._texts_sent.clear()

    def barge_in(self, active: ActiveResponse | None, now: float) -> None:
        """P7: the user started speaking; stop the agent and truncate what they did not hear."""
        track = self._last_audio
        flowing = active is not None and active.first_audio_at is not None and not active.interrupted
        if flowing:
            assert active is not None
            active.interrupted = True
        if active is not None:
            # Server VAD interrupts whatever response is active when speech
            # starts; what it still reports (a function call) is void.
            active.cancelled = True
        if track is not None and not track.truncated and (flowing or track.still_playing(now)):
            track.truncated = True
            self._out.upstream(
                oa.ConversationItemTruncate(
                    event_id=self._out.new_id("e"),
                    item_id=track.item_id,
                    content_index=track.content_index,
                    audio_end_ms=track.heard_ms(now),
                )
            )
