"""The service's server VAD, played by the fake upstream on the audio it is sent.

Opt-in (`FakeRealtime(server_vad=True)`), and only while the session asks
for turn detection, as the service does. Speech is found by level
(vad.py); what this adds is the wire: for each spoken turn the events the
live service sends, in its order (`speech_started`, `speech_stopped`,
`committed`, the user item added and done, the transcription), then a
response when `create_response` is on; speech during a response cancels it
when `interrupt_response` is on (both default to on, as in GA).
"""

from __future__ import annotations

from collections.abc import MutableSequence
from typing import Any, Protocol

import attrs

from .offline import spoken_placeholder
from .vad import EnergyVad, SpeechStarted, SpeechStopped


@attrs.frozen
class UserTurn:
    """A user turn the fake saw: typed (`text`) or spoken (`speech_ms` of audio)."""

    item_id: str
    text: str | None
    speech_ms: int | None = None


class Listened(Protocol):
    """What the VAD needs of a fake connection (FakeConnection; a protocol keeps the imports one way)."""

    session: dict[str, Any]
    user_turns: MutableSequence[UserTurn]

    def new_id(self, prefix: str) -> str: ...
    async def send(self, event: dict[str, Any]) -> None: ...
    def interrupt(self) -> None: ...
    def respond_when_idle(self) -> None: ...


class ServerVad:
    """Server VAD for one fake connection; `feed` it the decoded audio of each append."""

    def __init__(self, connection: Listened) -> None:
        self.connection = connection
        self._vad: EnergyVad | None = None
        self._speech_item: str | None = None
        self._last_item: str | None = None  # previous_item_id of the next commit

    def _audio_input(self) -> dict[str, Any]:
        return (self.connection.session.get("audio") or {}).get("input") or {}

    async def feed(self, pcm: bytes) -> None:
        detection = self._audio_input().get("turn_detection")
        fmt = self._audio_input().get("format") or {}
        if not isinstance(detection, dict) or fmt.get("type", "audio/pcm") != "audio/pcm":
            return  # no turn detection asked for, or G.711 (the fake only hears PCM16)
        if self._vad is None:
            self._vad = EnergyVad(
                prefix_padding_ms=int(detection.get("prefix_padding_ms", 300)),
                silence_duration_ms=int(detection.get("silence_duration_ms", 500)),
            )
        for found in self._vad.feed(pcm):
            if isinstance(found, SpeechStarted):
                self._speech_item = self.connection.new_id("item")
                await self.connection.send({"type": "input_audio_buffer.speech_started",
                                            "audio_start_ms": found.audio_start_ms, "item_id": self._speech_item})
                if detection.get("interrupt_response", True):
                    self.connection.interrupt()
            elif isinstance(found, SpeechStopped) and self._speech_item is not None:
                await self._spoken_turn(found, detection)

    async def _spoken_turn(self, stopped: SpeechStopped, detection: dict[str, Any]) -> None:
        send = self.connection.send
        item_id, self._speech_item = self._speech_item, None
        await send({"type": "input_audio_buffer.speech_stopped", "audio_end_ms": stopped.audio_end_ms,
                    "item_id": item_id})
        await send({"type": "input_audio_buffer.committed", "item_id": item_id, "previous_item_id": self._last_item})
        self._last_item = item_id
        item = {"id": item_id, "type": "message", "role": "user", "status": "completed",
                "content": [{"type": "input_audio", "transcript": None}]}
        await send({"type": "conversation.item.added", "item": item})
        await send({"type": "conversation.item.done", "item": item})
        # The fake recognises no words: its transcript says how long the turn was.
        transcript = spoken_placeholder(stopped.speech_ms)
        await send({"type": "conversation.item.input_audio_transcription.delta", "item_id": item_id,
                    "content_index": 0, "delta": transcript})
        await send({"type": "conversation.item.input_audio_transcription.completed", "item_id": item_id,
                    "content_index": 0, "transcript": transcript,
                    "usage": {"type": "duration", "seconds": round(stopped.speech_ms / 1000, 3)}})
        self.connection.user_turns.append(UserTurn(item_id, None, stopped.speech_ms))
        if detection.get("create_response", True):
            self.connection.respond_when_idle()
