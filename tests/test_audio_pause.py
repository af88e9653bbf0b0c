"""P5.9: no sample stays in the input resampler, through the session and through sockets.

When the client's audio pauses (audio.AUDIO_PAUSE_S past the moment its last
frame's audio ran out), the session flushes the resampler's tail upstream.
The deadlines below are generous bounds so that a test which would hang on
the old code fails instead; the gap itself is a timing goal, not asserted.
"""

from __future__ import annotations

import copy

import numpy as np
import pytest
import trio

from proxy.translate.audio import AUDIO_PAUSE_S, AudioFormat, InboundStream
from proxy.testing import DEFAULT_SETTINGS
from proxy.translate.session import AUDIO_PAUSE_TIMER

from .session_harness import Harness

PCM16 = np.dtype("<i2")


def settings_at(rate: int) -> dict:
    settings = copy.deepcopy(DEFAULT_SETTINGS)
    settings["audio"]["input"] = {"encoding": "linear16", "sample_rate": rate}
    return settings


def noise(rate: int, seconds: float, seed: int = 5) -> bytes:
    rng = np.random.default_rng(seed)
    return np.clip(rng.normal(0, 3000, size=round(rate * seconds)), -32768, 32767).astype(PCM16).tobytes()


def frames(data: bytes, rate: int, ms: int = 20) -> list[bytes]:
    size = rate * 2 * ms // 1000
    return [data[start : start + size] for start in range(0, len(data), size)]


def upstream_audio(harness: Harness) -> bytes:
    import base64

    return b"".join(base64.b64decode(e["audio"]) for e in harness.upstream if e["type"] == "input_audio_buffer.append")


def expected_upstream(rate: int, *bursts: bytes) -> bytes:
    """What the upstream must get: each burst resampled as a whole stream and flushed."""
    out = b""
    for burst in bursts:
        stream = InboundStream(AudioFormat("linear16", rate))
        out += b"".join(stream.feed(frame) for frame in frames(burst, rate)) + stream.flush()
    return out


# ------------------------------------------------------------------ session (pure)


def test_one_timer_per_burst_re_armed_while_audio_flows_then_the_tail_at_the_pause():
    harness = Harness()
    harness.ready(settings_at(16000))
    data = noise(16000, 0.4)
    armed = []
    for frame in frames(data, 16000):
        harness.audio(frame)
        armed.append(harness.timers.get(AUDIO_PAUSE_TIMER))
        if harness.timers.get(AUDIO_PAUSE_TIMER, float("inf")) <= harness.now + 0.02:
            harness.fire(AUDIO_PAUSE_TIMER)  # comes due while frames still flow: re-armed, no flush
        harness.now += 0.02
    assert len(set(armed)) < len(armed) // 3  # not one timer per frame
    assert len(upstream_audio(harness)) < 19200  # the tail is still held
    harness.now = harness.timers[AUDIO_PAUSE_TIMER]
    harness.fire(AUDIO_PAUSE_TIMER)
    assert upstream_audio(harness) == expected_upstream(16000, data)  # 400 ms exactly, at 24 kHz
    assert AUDIO_PAUSE_TIMER not in harness.timers  # nothing armed until audio comes again


@pytest.mark.parametrize("settings_rate", [24000])
def test_pass_through_audio_arms_no_timer(settings_rate):
    harness = Harness()
    harness.ready(settings_at(settings_rate))
    harness.audio(b"\x01\x00" * 480)
    assert AUDIO_PAUSE_TIMER not in harness.timers
    assert len(upstream_audio(harness)) == 960


# ------------------------------------------------------------------ through sockets


async def test_one_short_16k_frame_reaches_the_upstream(proxy, fake):
    """Measured before the fix: one 960-byte 16 kHz frame gave 0 bytes upstream in 1.5 s."""
    fake.responder = None
    with trio.fail_after(5):
        async with proxy.session(fake, settings_at(16000)) as (client, upstream):
            frame = noise(16000, 0.03)
            await client.send_audio(frame)
            assert await upstream.wait_audio(1440) == expected_upstream(16000, frame)  # 30 ms at 24 kHz


@pytest.mark.parametrize("rate", [16000, 44100])
async def test_200_ms_then_a_pause_delivers_all_200_ms_and_resuming_shifts_nothing(proxy, fake, rate):
    fake.responder = None
    first, second = noise(rate, 0.2, seed=1), noise(rate, 0.1, seed=2)
    with trio.fail_after(10):
        async with proxy.session(fake, settings_at(rate)) as (client, upstream):
            for frame in frames(first, rate):
                await client.send_audio(frame)
            await upstream.wait_audio(9600)  # exactly 200 ms at 24 kHz, once the pause is seen
            await trio.sleep(AUDIO_PAUSE_S * 2)  # and nothing more comes during the pause
            assert len(upstream.audio) == 9600
            for frame in frames(second, rate):
                await client.send_audio(frame)
            received = await upstream.wait_audio(9600 + 4800)
    # No sample of the first burst repeated or moved: each burst as a stream of its own.
    assert received == expected_upstream(rate, first, second)


async def test_the_tail_goes_upstream_when_the_client_closes(proxy, fake):
    """P5.9 at the end of the connection: 100 ms sent, then the client leaves before any pause is seen."""
    fake.responder = None
    burst = noise(16000, 0.1)
    with trio.fail_after(5):
        async with proxy.session(fake, settings_at(16000)) as (client, upstream):
            await client.send_audio(burst)  # one 100 ms frame: its pause would come 200 ms later
            await upstream.wait_audio(1)  # the part the resampler let through at once
        assert await upstream.wait_closed() == 1000  # P2.5
    assert bytes(upstream.audio) == expected_upstream(16000, burst)  # all of it: 4800 bytes


def test_client_closed_flushes_the_tail_and_a_closed_session_sends_nothing():
    from proxy.translate.events import ClientClosed

    harness = Harness()
    harness.ready(settings_at(44100))
    harness.audio(noise(44100, 0.05))
    harness.take(harness.session.handle(ClientClosed(), harness.now))
    assert len(upstream_audio(harness)) == 2400  # 50 ms at 24 kHz
    harness.upstream.clear()
    assert harness.session.handle(ClientClosed(), harness.now) == []  # nothing left: nothing to wait for
