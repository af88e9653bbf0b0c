"""P3.7 (revised): a Settings without `audio`, or whose `audio` lacks a side, is linear16 at 24000 Hz there.

Clients written against the Node proxy (its CLI, its tests, text-only
clients) send such Settings; a drop-in replacement must accept them.
"""

from __future__ import annotations

import json

import pytest
import trio

from proxy.protocol.wire import encode_client, encode_upstream
from proxy.translate import Session, SessionOptions, ToClient, ToUpstream
from proxy.translate.events import ClientText, Opened

from .oracles import validate_deepgram_server_message, validate_openai_client_event

# The Node proxy CLI's first message, byte for byte.
NODE_CLI_SETTINGS = '{"type":"Settings","agent":{"think":{"prompt":""}}}'
PCM24 = {"type": "audio/pcm", "rate": 24000}


def first_settings(text: str) -> tuple[list[dict], list[dict]]:
    session = Session("00000000-0000-4000-8000-0000000000a7", SessionOptions())
    session.handle(Opened(), 0.0)
    upstream, client = [], []
    for action in session.handle(ClientText(text), 0.0):
        if isinstance(action, ToUpstream):
            upstream.append(json.loads(encode_upstream(action.event)))
            validate_openai_client_event(upstream[-1])
        elif isinstance(action, ToClient):
            client.append(json.loads(encode_client(action.message)))
            validate_deepgram_server_message(client[-1])
    return upstream, client


@pytest.mark.parametrize(
    "settings",
    [
        NODE_CLI_SETTINGS,
        '{"type":"Settings"}',
        '{"type":"Settings","audio":null,"agent":{"think":{"prompt":"Be brief."}}}',
        '{"type":"Settings","audio":{}}',
    ],
    ids=["node-cli", "bare", "audio-null", "audio-empty"],
)
def test_p3_7_settings_without_audio_is_linear16_24k_both_ways(settings):
    upstream, client = first_settings(settings)
    assert client == []  # no Error
    assert [event["type"] for event in upstream] == ["session.update"]
    audio = upstream[0]["session"]["audio"]
    assert audio["input"]["format"] == PCM24 and audio["output"]["format"] == PCM24


@pytest.mark.parametrize(
    "audio, input_format, output_format",
    [
        ({"output": {"encoding": "mulaw", "sample_rate": 8000}}, PCM24, {"type": "audio/pcmu"}),
        ({"input": {"encoding": "alaw", "sample_rate": 8000}}, {"type": "audio/pcma"}, PCM24),
    ],
    ids=["no-input", "no-output"],
)
def test_p3_7_the_missing_side_alone_is_linear16_24k(audio, input_format, output_format):
    upstream, client = first_settings(json.dumps({"type": "Settings", "audio": audio}))
    assert client == []
    session_audio = upstream[0]["session"]["audio"]
    assert session_audio["input"]["format"] == input_format
    assert session_audio["output"]["format"] == output_format


@pytest.mark.parametrize(
    "audio, field",
    [
        ({"input": {"encoding": "opus", "sample_rate": 48000}}, "audio.input.encoding"),
        ({"output": {"encoding": "linear16", "sample_rate": "24000"}}, "audio.output.sample_rate"),
        ([], "audio"),
    ],
)
def test_p3_7_what_is_given_is_still_checked(audio, field):
    upstream, client = first_settings(json.dumps({"type": "Settings", "audio": audio}))
    assert upstream == []
    assert [(m["type"], m["code"]) for m in client] == [("Error", "INVALID_SETTINGS")]
    assert field in client[0]["description"]


async def test_p3_7_node_cli_settings_gets_settings_applied_and_audio_passes_as_pcm24(proxy, fake):
    async with proxy.connect() as client:
        await client.next("Welcome")
        await client.send_text(NODE_CLI_SETTINGS)
        with trio.fail_after(5):
            await client.next("SettingsApplied")
            upstream = await fake.next_connection()
            frame = bytes(range(256)) * 4  # 24 kHz linear16: passed through unchanged (P5.9)
            await client.send_audio(frame)
            assert await upstream.wait_audio(len(frame)) == frame
        assert client.messages("Error") == []
        session = upstream.of_type("session.update")[0]["session"]
        assert session["audio"]["input"]["format"] == PCM24
        assert session["instructions"] == ""
