"""Audio formats on both sides of the proxy and the per-stream converters.

OpenAI Realtime takes and produces PCM16 mono at 24 kHz (`audio/pcm`) or
8 kHz G.711 (`audio/pcmu`, `audio/pcma`); Deepgram clients name theirs in
`Settings.audio` (P4). G.711 passes through untouched; linear16 at 24 kHz is
passed through too, keeping a dangling odd byte for the next frame (P5.9).
"""

from __future__ import annotations

from typing import Any

import attrs

UPSTREAM_PCM_RATE = 24000
G711_RATE = 8000

# Deepgram encoding name -> OpenAI audio format type.
UPSTREAM_TYPES = {"linear16": "audio/pcm", "mulaw": "audio/pcmu", "alaw": "audio/pcma"}
SUPPORTED_ENCODINGS = tuple(UPSTREAM_TYPES)
SUPPORTED_PCM_RATES = (UPSTREAM_PCM_RATE,)


class UnsupportedAudio(ValueError):
    """A format the proxy cannot serve; `field` is the Settings field to name."""

    def __init__(self, field: str, problem: str) -> None:
        super().__init__(f"{field}: {problem}")
        self.field = field
        self.problem = problem


@attrs.frozen
class AudioFormat:
    encoding: str
    sample_rate: int

    @property
    def upstream_format(self) -> dict[str, Any]:
        if self.encoding == "linear16":
            return {"type": "audio/pcm", "rate": UPSTREAM_PCM_RATE}
        return {"type": UPSTREAM_TYPES[self.encoding]}

    @property
    def upstream_bytes_per_ms(self) -> int:
        """Bytes of upstream-format audio per millisecond (for P7 truncation)."""
        return UPSTREAM_PCM_RATE * 2 // 1000 if self.encoding == "linear16" else G711_RATE // 1000


def check_format(encoding: Any, sample_rate: Any, field: str) -> AudioFormat:
    """Return the AudioFormat, or raise UnsupportedAudio naming the field (P3.7)."""
    if encoding not in UPSTREAM_TYPES:
        raise UnsupportedAudio(
            f"{field}.encoding", f"{encoding!r} is not supported; use one of {', '.join(SUPPORTED_ENCODINGS)}"
        )
    if encoding == "linear16":
        if sample_rate not in SUPPORTED_PCM_RATES:
            rates = ", ".join(str(rate) for rate in SUPPORTED_PCM_RATES)
            raise UnsupportedAudio(f"{field}.sample_rate", f"{sample_rate!r} is not supported for linear16; use {rates}")
    elif sample_rate != G711_RATE:
        raise UnsupportedAudio(f"{field}.sample_rate", f"{encoding} is carried at {G711_RATE} Hz, got {sample_rate!r}")
    return AudioFormat(encoding, sample_rate)


class InboundStream:
    """Client microphone audio -> upstream format, one per connection."""

    def __init__(self, fmt: AudioFormat) -> None:
        self.format = fmt
        self._pending = b""

    def feed(self, data: bytes) -> bytes:
        if self.format.encoding != "linear16":
            return data
        # P5.9: an odd-length frame keeps its dangling byte for the next one.
        if self._pending:
            data = self._pending + data
        if len(data) & 1:
            self._pending = data[-1:]
            return data[:-1]
        self._pending = b""
        return data


class OutboundStream:
    """Upstream agent speech -> client format, one per response."""

    def __init__(self, fmt: AudioFormat) -> None:
        self.format = fmt

    def feed(self, data: bytes) -> bytes:
        return data

    def flush(self) -> bytes:
        """End of the response's audio: return whatever the stream still holds."""
        return b""
