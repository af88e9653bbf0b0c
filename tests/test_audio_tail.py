"""P5.9: no sample stays in the input resampler when the client's audio pauses (pure tests).

libsoxr holds back up to ~37 ms of input; `InboundStream` says when the
client's audio counts as paused and `flush` gives the held tail. The
session-level and socket-level behaviour is in tests/test_audio_pause.py.
"""

from __future__ import annotations

import numpy as np
import pytest

from proxy.translate.audio import AUDIO_PAUSE_S, AudioFormat, InboundStream

PCM16 = np.dtype("<i2")


def noise(rate: int, seconds: float, seed: int = 3) -> bytes:
    rng = np.random.default_rng(seed)
    return np.clip(rng.normal(0, 3000, size=round(rate * seconds)), -32768, 32767).astype(PCM16).tobytes()


def frames(data: bytes, rate: int, ms: int = 20) -> list[bytes]:
    size = rate * 2 * ms // 1000
    return [data[start : start + size] for start in range(0, len(data), size)]


def test_the_pause_counts_from_when_the_next_frame_was_due():
    stream = InboundStream(AudioFormat("linear16", 16000))
    assert stream.holds_audio and not stream.pending
    stream.feed(b"\0" * 640, now=1.0)  # 20 ms of audio: the next frame is due at 1.02
    assert stream.pending and stream.pause_deadline == pytest.approx(1.02 + AUDIO_PAUSE_S)
    assert not stream.paused(1.0 + AUDIO_PAUSE_S)
    assert stream.paused(1.02 + AUDIO_PAUSE_S)
    stream.feed(b"\0" * 8000, now=1.05)  # a 250 ms chunk pauses 250 ms later
    assert stream.pause_deadline == pytest.approx(1.30 + AUDIO_PAUSE_S)
    stream.flush()
    assert not stream.pending and not stream.paused(99.0)


@pytest.mark.parametrize("fmt", [AudioFormat("linear16", 24000), AudioFormat("mulaw", 8000)])
def test_pass_through_formats_hold_nothing_and_never_ask_for_a_flush(fmt):
    stream = InboundStream(fmt)
    stream.feed(b"\0" * 480, now=0.0)
    assert not stream.holds_audio and not stream.pending and not stream.paused(10.0)


def test_a_lone_short_frame_comes_out_whole_at_the_flush():
    """The issue's measurement: one 960-byte 16 kHz frame gave 0 bytes upstream."""
    stream = InboundStream(AudioFormat("linear16", 16000))
    held = stream.feed(b"\x10\x00" * 480, now=0.0)
    assert held == b""  # what the resampler keeps back without a flush
    assert len(held + stream.flush()) == 480 * 3 // 2 * 2  # 30 ms at 24 kHz


@pytest.mark.parametrize("rate", [16000, 44100, 8000, 48000])
def test_200_ms_then_a_flush_is_exactly_200_ms_at_24k(rate):
    stream = InboundStream(AudioFormat("linear16", rate))
    out = b"".join(stream.feed(frame) for frame in frames(noise(rate, 0.2), rate))
    assert len(out) < 9600  # without the flush, the tail would be missing
    assert len(out + stream.flush()) == 9600  # 200 ms of PCM16 at 24 kHz


@pytest.mark.parametrize("rate", [16000, 44100])
def test_audio_after_a_flush_is_neither_shifted_nor_duplicated(rate):
    """After a flush, the next audio starts a new stream: exactly what a fresh stream makes of it."""
    first, second = noise(rate, 0.2, seed=1), noise(rate, 0.13, seed=2)
    stream = InboundStream(AudioFormat("linear16", rate))
    out_first = b"".join(stream.feed(frame) for frame in frames(first, rate)) + stream.flush()
    out_second = b"".join(stream.feed(frame) for frame in frames(second, rate)) + stream.flush()
    fresh = InboundStream(AudioFormat("linear16", rate))
    expected_second = b"".join(fresh.feed(frame) for frame in frames(second, rate)) + fresh.flush()
    assert len(out_first) == 9600  # the first burst, whole: nothing left to leak into the second
    assert out_second == expected_second  # no sample of the first burst repeated, none shifted
    # And a click in the second burst lands where its time says.
    click = bytearray(b"\0" * (rate // 10 * 2))
    click[rate // 20 * 2 : rate // 20 * 2 + 2] = (20000).to_bytes(2, "little", signed=True)
    out_click = stream.feed(bytes(click)) + stream.flush()
    peak = int(np.abs(np.frombuffer(out_click, dtype=PCM16)).argmax())
    assert abs(peak - 24000 // 20) <= 1  # 50 ms into the burst at 24 kHz
