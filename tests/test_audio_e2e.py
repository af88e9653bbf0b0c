"""Integration: audio formats through real sockets, client <-> proxy <-> fake upstream.

P4 audio rows, P5.9 (mic audio converted to the upstream format), the P6
audio row (agent speech converted to `Settings.audio.output`) and P3.7
(formats the proxy cannot serve are refused, the connection stays usable).
"""

from __future__ import annotations

import copy
from typing import Any

import numpy as np
import pytest
import trio

from proxy.testing import DEFAULT_SETTINGS

PCM16 = np.dtype("<i2")
UPSTREAM_PCM = {"type": "audio/pcm", "rate": 24000}


def settings_with(input_format: dict[str, Any] | None = None, output_format: dict[str, Any] | None = None) -> dict[str, Any]:
    settings = copy.deepcopy(DEFAULT_SETTINGS)
    if input_format is not None:
        settings["audio"]["input"] = input_format
    if output_format is not None:
        settings["audio"]["output"] = output_format
    return settings


def sine(freq: float, rate: int, seconds: float) -> bytes:
    t = np.arange(int(rate * seconds)) / rate
    return np.rint(10000 * np.sin(2 * np.pi * freq * t)).astype(PCM16).tobytes()


def peak_hz(data: bytes, rate: int) -> float:
    y = np.frombuffer(data, dtype=PCM16).astype(np.float64)
    spectrum = np.abs(np.fft.rfft(y * np.hanning(len(y))))
    return float(np.fft.rfftfreq(len(y), 1 / rate)[spectrum.argmax()])


def frames(data: bytes, size: int) -> list[bytes]:
    return [data[start : start + size] for start in range(0, len(data), size)]


async def mic_arrives_upstream(proxy, fake, rate: int, frame_bytes: int, seconds: float = 2.0) -> bytes:
    """Send a 1 kHz sine at `rate`; return what the fake upstream got once nearly all is there."""
    fake.responder = None
    async with proxy.connect() as client:
        await client.settings(settings_with({"encoding": "linear16", "sample_rate": rate}))
        await client.next("SettingsApplied")
        upstream = await fake.next_connection()
        assert upstream.of_type("session.update")[0]["session"]["audio"]["input"]["format"] == UPSTREAM_PCM  # P4
        data = sine(1000, rate, seconds)
        for frame in frames(data, frame_bytes):
            await client.send_audio(frame)
        exact = len(data) // 2 * 24000 // rate * 2  # bytes at 24 kHz
        # The streaming filter holds back up to ~40 ms until more audio comes
        # (bench/README.md); 60 ms of slack, 48 bytes per ms at 24 kHz.
        received = await upstream.wait_audio(exact - 60 * 48)
        assert len(upstream.audio) <= exact
        assert len(received) % 2 == 0
        return received


async def test_16k_mic_audio_arrives_at_24k(proxy, fake):
    """P5.9: 16 kHz linear16 in 20 ms frames -> 24 kHz appends, same pitch, 1.5x the samples."""
    with trio.fail_after(10):
        received = await mic_arrives_upstream(proxy, fake, 16000, 640)
        assert abs(peak_hz(received, 24000) - 1000) <= 2


async def test_44k1_browser_frames_of_8192_bytes(proxy, fake):
    """A browser capturing at 44.1 kHz sends 8192-byte frames of PCM16 and says so in Settings."""
    with trio.fail_after(10):
        received = await mic_arrives_upstream(proxy, fake, 44100, 8192)
        assert abs(peak_hz(received, 24000) - 1000) <= 2


async def test_odd_byte_frames_lose_nothing(proxy, fake):
    """P5.9: frames of odd length keep the dangling byte; the upstream sees whole samples only."""
    fake.responder = None
    with trio.fail_after(10):
        async with proxy.session(fake) as (client, upstream):
            data = sine(440, 24000, 0.5)
            for frame in frames(data, 963):
                await client.send_audio(frame)
            assert await upstream.wait_audio(len(data)) == data


@pytest.mark.parametrize("client_rate", [48000, 16000])
async def test_agent_audio_reaches_client_at_its_rate(proxy, fake, client_rate):
    """P6 audio row: 24 kHz deltas -> the client's rate; the response's tail is flushed, no sample lost."""
    fake.responder = None
    with trio.fail_after(10):
        async with proxy.connect() as client:
            await client.settings(settings_with(output_format={"encoding": "linear16", "sample_rate": client_rate, "container": "none"}))
            await client.next("SettingsApplied")
            upstream = await fake.next_connection()
            assert upstream.of_type("session.update")[0]["session"]["audio"]["output"]["format"] == UPSTREAM_PCM
            speech = sine(1000, 24000, 1.0)
            for _ in range(2):  # two responses: each starts a fresh stream and ends flushed
                before = len(client.audio)
                await upstream.play_response(transcript="Hello.", audio=speech, chunk=960)
                await client.next("AgentAudioDone")
                heard = client.audio[before:]
                assert len(heard) // 2 == 24000 * client_rate // 24000
                assert abs(peak_hz(heard, client_rate) - 1000) <= 2
            types = client.types()
            # P6.2: all of a response's audio (its flushed tail included) comes before AgentAudioDone.
            last_done = len(types) - 1 - types[::-1].index("AgentAudioDone")
            assert "<audio>" not in types[last_done:]


@pytest.mark.parametrize(("encoding", "upstream_type"), [("mulaw", "audio/pcmu"), ("alaw", "audio/pcma")])
async def test_g711_passes_through_both_ways_byte_identical(proxy, fake, encoding, upstream_type):
    """P4: G.711 maps to audio/pcmu|pcma natively, no conversion in the proxy either way."""
    fake.responder = None
    g711 = {"encoding": encoding, "sample_rate": 8000}
    with trio.fail_after(10):
        async with proxy.connect() as client:
            await client.settings(settings_with(g711, {**g711, "container": "none"}))
            await client.next("SettingsApplied")
            upstream = await fake.next_connection()
            audio = upstream.of_type("session.update")[0]["session"]["audio"]
            assert audio["input"]["format"] == {"type": upstream_type}
            assert audio["output"]["format"] == {"type": upstream_type}
            mic = bytes(range(256)) * 10
            for frame in frames(mic, 161):  # odd sizes: one byte is one sample here
                await client.send_audio(frame)
            assert await upstream.wait_audio(len(mic)) == mic
            speech = bytes(reversed(range(256))) * 25
            await upstream.play_response(transcript="Hi.", audio=speech, chunk=160)
            await client.next("AgentAudioDone")
            assert client.audio == speech


async def test_g711_output_rate_defaults_to_8000(proxy, fake):
    """P4: an output `mulaw` with no sample_rate is 8 kHz, not the linear16 default."""
    fake.responder = None
    with trio.fail_after(10):
        async with proxy.connect() as client:
            await client.settings(settings_with(output_format={"encoding": "mulaw"}))
            await client.next("SettingsApplied")
            upstream = await fake.next_connection()
            assert upstream.of_type("session.update")[0]["session"]["audio"]["output"]["format"] == {"type": "audio/pcmu"}


@pytest.mark.parametrize(
    ("input_format", "output_format", "field"),
    [
        ({"encoding": "opus", "sample_rate": 48000}, None, "audio.input.encoding"),
        ({"encoding": "flac", "sample_rate": 16000}, None, "audio.input.encoding"),
        (None, {"encoding": "mp3", "sample_rate": 24000}, "audio.output.encoding"),
        (None, {"encoding": "linear16", "sample_rate": 24000, "container": "wav"}, "audio.output.container"),
        (None, {"encoding": "linear16", "sample_rate": 24000, "container": "ogg"}, "audio.output.container"),
        ({"encoding": "linear16", "sample_rate": 96000}, None, "audio.input.sample_rate"),
        ({"encoding": "mulaw", "sample_rate": 16000}, None, "audio.input.sample_rate"),
        (None, {"encoding": "linear16", "sample_rate": 6000}, "audio.output.sample_rate"),
    ],
)
async def test_unservable_format_is_refused_and_connection_stays_open(proxy, fake, input_format, output_format, field):
    """P3.7: INVALID_SETTINGS naming the field; nothing upstream; a corrected Settings then works."""
    with trio.fail_after(10):
        async with proxy.connect() as client:
            await client.settings(settings_with(input_format, output_format))
            error = await client.next("Error")
            assert error["code"] == "INVALID_SETTINGS"
            assert field in error["description"]
            await client.settings(settings_with({"encoding": "linear16", "sample_rate": 16000}))
            await client.next("SettingsApplied")
            upstream = await fake.next_connection()
            updates = upstream.of_type("session.update")
            assert len(updates) == 1  # the refused Settings sent nothing upstream
            assert updates[0]["session"]["audio"]["input"]["format"] == UPSTREAM_PCM
