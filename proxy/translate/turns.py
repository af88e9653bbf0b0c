"""Book-keeping for responses, function-call rounds and live updates.

Plain data used by `Session`; no I/O and no clock reads (times are passed in).
"""

from __future__ import annotations

from typing import Any

import attrs

from .audio import OutboundStream

# Who asked for a response, which decides where its latency clock starts (P6.4).
USER = "user"  # InjectUserMessage follow-up (P5.1)
FUNCTION = "function"  # function-call follow-up (P5.2)
AGENT = "agent"  # InjectAgentMessage (P5.3)
GREETING = "greeting"  # spoken greeting (P3.5), out of band
VOICE = "voice"  # created by the upstream's turn detection


@attrs.define
class ResponseRequest:
    """A `response.create` the proxy wants to send, or has sent."""

    kind: str
    instructions: str | None = None
    out_of_band: bool = False
    message: str | None = None  # InjectAgentMessage text, for logs
    event_id: str | None = None
    sent_at: float | None = None


@attrs.define
class ActiveResponse:
    id: str
    kind: str
    turn_end: float
    created_at: float
    output: OutboundStream
    out_of_band: bool = False
    request: ResponseRequest | None = None  # the proxy's request it was matched to
    first_audio_at: float | None = None
    audio_item_id: str | None = None
    audio_content_index: int = 0
    upstream_audio_bytes: int = 0
    interrupted: bool = False
    cancelled: bool = False  # by our response.cancel or a barge-in: its function calls are void
    audio_flushed: bool = False


@attrs.define
class AudioTrack:
    """The agent speech last sent to the client, for P7 truncation after the fact."""

    item_id: str
    content_index: int
    first_audio_at: float
    upstream_audio_bytes: int
    bytes_per_ms: int
    truncated: bool = False

    def heard_ms(self, now: float) -> int:
        """P7: the smaller of the audio sent and the wall time since its first delta."""
        sent_ms = self.upstream_audio_bytes / self.bytes_per_ms
        return int(min(sent_ms, (now - self.first_audio_at) * 1000))

    def still_playing(self, now: float) -> bool:
        return self.heard_ms(now) < self.upstream_audio_bytes / self.bytes_per_ms


@attrs.define
class CallRound:
    """P5.2: the function calls one response asked for, and the client's answers."""

    response_id: str
    calls: dict[str, str] = attrs.Factory(dict)  # call_id -> name
    answered: set[str] = attrs.Factory(set)
    response_done: bool = False
    last_answer_at: float | None = None

    @property
    def all_answered(self) -> bool:
        return bool(self.calls) and self.answered >= set(self.calls)

    @property
    def complete(self) -> bool:
        return self.response_done and self.all_answered


# Live update kinds (P5.4-P5.6) and the acknowledgement each earns.
PROMPT = "prompt"
SPEAK = "speak"
THINK = "think"
LISTEN = "listen"


@attrs.define
class Update:
    """One queued live update; its changes are applied only once acknowledged (P5.7)."""

    kind: str
    session: dict[str, Any]
    instructions: str | None = None
    append_prompt: str | None = None
    tools: tuple[dict[str, Any], ...] | None = None
    voice: str | None = None
    server_functions: dict[str, Any] | None = None  # UpdateThink: name -> endpoint
    transcription: dict[str, Any] | None = None  # UpdateListen: audio.input.transcription
    event_id: str | None = None


@attrs.define
class Applied:
    """What the upstream session currently has, as far as the proxy knows.

    Set from the first Settings once acknowledged (P3.3) and changed only by
    acknowledged updates (P5.7).
    """

    instructions: str = ""
    tools: tuple[dict[str, Any], ...] = ()
    voice: str | None = None
    # Server-side functions of the current think configuration: name -> endpoint.
    server_functions: dict[str, Any] = attrs.Factory(dict)
    # The input transcription an acknowledged UpdateListen set (None: the first Settings').
    transcription: dict[str, Any] | None = None
