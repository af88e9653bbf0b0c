"""Audio formats on both sides of the proxy and the per-stream converters.

OpenAI Realtime takes and produces PCM16 mono at 24 kHz (`audio/pcm`) or
8 kHz G.711 (`audio/pcmu`, `audio/pcma`); Deepgram clients name theirs in
`Settings.audio` (P4). G.711 passes through untouched. linear16 at 24 kHz is
passed through too (no resampler is even built, so such a session costs
nothing extra); linear16 at any other rate from 8 to 48 kHz goes through a
streaming resampler that keeps its filter state from one frame to the next, so
frame boundaries leave no clicks or gaps (P5.9, P6 audio row).

All PCM16 here is little-endian mono, as on both wires.
"""

from __future__ import annotations

from typing import Any

import attrs
import numpy as np
import soxr

UPSTREAM_PCM_RATE = 24000
G711_RATE = 8000

# Deepgram encoding name -> OpenAI audio format type.
UPSTREAM_TYPES = {"linear16": "audio/pcm", "mulaw": "audio/pcmu", "alaw": "audio/pcma"}
SUPPORTED_ENCODINGS = tuple(UPSTREAM_TYPES)
# Any integer rate in this range is accepted for linear16: telephony (8 kHz)
# up to what browsers capture at (44.1/48 kHz, whatever they were asked for).
MIN_PCM_RATE = 8000
MAX_PCM_RATE = 48000
SUPPORTED_PCM_RATES = range(MIN_PCM_RATE, MAX_PCM_RATE + 1)

# libsoxr quality preset. Measured with bench/resample_cost.py (see
# bench/README.md): per 20 ms frame the cost is mostly the call itself, so
# LQ, MQ and HQ cost the same to within noise. What differs is speech quality
# and delay. QQ (cubic) aliases a 10 kHz tone to 6 kHz at only -3 dB going
# 24 -> 16 kHz. LQ holds back half as much (about 11 ms on average at 16 kHz)
# but its early roll-off takes 13 dB off 7 kHz at 16 kHz and 8 dB off 3.4 kHz
# at 8 kHz, i.e. the top of the telephone band. MQ and HQ are flat to the band
# edge and both hold back about 21 ms on average at 16-48 kHz (about 42 ms at
# 8 kHz, where libsoxr's blocks span more time); HQ rejects aliases better
# (-138 vs -119 dB) for the same cost. VHQ doubles the delay at 16 kHz for
# nothing audible in speech.
RESAMPLER_QUALITY = "HQ"

_PCM16 = np.dtype("<i2")
_PCM16_MIN = np.float32(-32768)
_PCM16_MAX = np.float32(32767)
_EMPTY = np.zeros(0, dtype=np.float32)


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

    @property
    def resampled(self) -> bool:
        """True when this format needs the resampler (linear16 not at 24 kHz)."""
        return self.encoding == "linear16" and self.sample_rate != UPSTREAM_PCM_RATE


def check_format(encoding: Any, sample_rate: Any, field: str) -> AudioFormat:
    """Return the AudioFormat, or raise UnsupportedAudio naming the field (P3.7)."""
    if encoding not in UPSTREAM_TYPES:
        raise UnsupportedAudio(
            f"{field}.encoding", f"{encoding!r} is not supported; use one of {', '.join(SUPPORTED_ENCODINGS)}"
        )
    # bool is an int to Python, but `true` is no sample rate.
    is_rate = isinstance(sample_rate, int) and not isinstance(sample_rate, bool)
    if encoding == "linear16":
        if not is_rate or not MIN_PCM_RATE <= sample_rate <= MAX_PCM_RATE:
            raise UnsupportedAudio(
                f"{field}.sample_rate",
                f"{sample_rate!r} is not supported for linear16; use an integer rate from {MIN_PCM_RATE} to {MAX_PCM_RATE} Hz",
            )
    elif not is_rate or sample_rate != G711_RATE:
        raise UnsupportedAudio(f"{field}.sample_rate", f"{encoding} is carried at {G711_RATE} Hz only, got {sample_rate!r}")
    return AudioFormat(encoding, sample_rate)


class PcmResampler:
    """Streaming PCM16 resampler: bytes in, bytes out, filter state kept across calls.

    The output depends only on the concatenated input, never on how it was cut
    into frames: an odd trailing byte is held for the next call (P5.9), and the
    filter runs in float32 rather than libsoxr's int16 mode, because that mode
    dithers its output and the dither comes out differently for different
    framings. Rounding back to int16 is done here, vectorised.
    """

    def __init__(self, in_rate: int, out_rate: int) -> None:
        self.in_rate = in_rate
        self.out_rate = out_rate
        self._stream = soxr.ResampleStream(in_rate, out_rate, 1, dtype="float32", quality=RESAMPLER_QUALITY)
        self._odd_byte = b""
        self._ended = False

    def feed(self, data: bytes) -> bytes:
        """Resample `data`; returns what the filter can already give (maybe b"")."""
        if self._ended:
            # Audio after flush() starts a new stream rather than failing.
            self._stream.clear()
            self._ended = False
        if self._odd_byte:
            data = self._odd_byte + data
            self._odd_byte = b""
        if len(data) & 1:
            self._odd_byte = data[-1:]
            data = data[:-1]
        if not data:
            return b""
        samples = np.frombuffer(data, dtype=_PCM16).astype(np.float32)
        return _to_pcm16(self._stream.resample_chunk(samples))

    def flush(self) -> bytes:
        """End of the stream: the filter's tail, so no sample is lost.

        A dangling odd byte is half a sample and is dropped.
        """
        self._odd_byte = b""
        if self._ended:
            return b""
        self._ended = True
        return _to_pcm16(self._stream.resample_chunk(_EMPTY, last=True))


def _to_pcm16(samples: np.ndarray) -> bytes:
    if not samples.size:
        return b""
    # Overshoot past full scale saturates; a bare cast would wrap it around.
    # maximum/minimum with float32 bounds: np.clip costs several times more per
    # 20 ms frame.
    np.rint(samples, out=samples)
    np.maximum(samples, _PCM16_MIN, out=samples)
    np.minimum(samples, _PCM16_MAX, out=samples)
    return samples.astype(_PCM16).tobytes()


class _EvenBytes:
    """linear16 pass-through that never splits a sample across two frames (P5.9)."""

    def __init__(self) -> None:
        self._odd_byte = b""

    def feed(self, data: bytes) -> bytes:
        if self._odd_byte:
            data = self._odd_byte + data
            self._odd_byte = b""
        if len(data) & 1:
            self._odd_byte = data[-1:]
            return data[:-1]
        return data

    def flush(self) -> bytes:
        self._odd_byte = b""
        return b""


class _Unchanged:
    """G.711: one byte per sample, same format on both sides."""

    def feed(self, data: bytes) -> bytes:
        return data

    def flush(self) -> bytes:
        return b""


def _converter(fmt: AudioFormat, in_rate: int, out_rate: int) -> PcmResampler | _EvenBytes | _Unchanged:
    if fmt.encoding != "linear16":
        return _Unchanged()
    if in_rate == out_rate:
        return _EvenBytes()
    return PcmResampler(in_rate, out_rate)


class InboundStream:
    """Client microphone audio -> upstream format, one per connection (P5.9)."""

    def __init__(self, fmt: AudioFormat) -> None:
        self.format = fmt
        self._converter = _converter(fmt, fmt.sample_rate, UPSTREAM_PCM_RATE)

    def feed(self, data: bytes) -> bytes:
        return self._converter.feed(data)

    def flush(self) -> bytes:
        """End of the client's audio: the resampler's tail (b"" when none)."""
        return self._converter.flush()


class OutboundStream:
    """Upstream agent speech -> client format, one per response (P6 audio row).

    A fresh stream per response means no filter state leaks from one
    response's audio into the next one's.
    """

    def __init__(self, fmt: AudioFormat) -> None:
        self.format = fmt
        self._converter = _converter(fmt, UPSTREAM_PCM_RATE, fmt.sample_rate)

    def feed(self, data: bytes) -> bytes:
        return self._converter.feed(data)

    def flush(self) -> bytes:
        """End of the response's audio: return whatever the stream still holds."""
        return self._converter.flush()
