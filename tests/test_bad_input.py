"""Bad input through real sockets: each gets the behaviour its rule names, the
connection survives where the rule says so, and nothing hangs (P3.6, P3.7,
P5.1, P5.8-P5.11, P6.3)."""

from __future__ import annotations

import copy
import json

import pytest
import trio

from proxy.testing import DEFAULT_REPLY, DEFAULT_SETTINGS

DEADLINE = 5


async def complete_text_turn(client, upstream, content: str = "still there?") -> None:
    """InjectUserMessage -> the whole reply, on a connection already set up."""
    await client.send({"type": "InjectUserMessage", "content": content})
    await client.next("LatencyReport")  # the last message of a turn
    texts = [m for m in client.messages("ConversationText") if m["role"] == "assistant"]
    assert texts[-1]["content"] == DEFAULT_REPLY
    assert [m for m in client.messages("ConversationText") if m["role"] == "user"][-1]["content"] == content


def upstream_types(upstream) -> list[str]:
    return [event["type"] for event in upstream.received]


@pytest.mark.parametrize(
    "frame, code",
    [
        ("{this is not json", "INVALID_MESSAGE"),
        ('["Settings"]', "INVALID_MESSAGE"),
        ("12", "INVALID_MESSAGE"),
        ('{"type": "SpeakFaster"}', "UNKNOWN_MESSAGE_TYPE"),
        ('{"type": "InjectUserMessage", "content": ""}', "INVALID_MESSAGE"),
        ('{"type": "InjectUserMessage", "content": ["a"]}', "INVALID_MESSAGE"),
        ("[" * 200_000, "INVALID_MESSAGE"),
        # What JSON.stringify yields for a string cut mid-emoji: valid JSON, not text.
        ('{"type": "InjectUserMessage", "content": "hi \\ud83d"}', "INVALID_MESSAGE"),
    ],
    ids=[
        "malformed", "array", "number", "unknown-type", "empty-inject", "inject-wrong-type", "deeply-nested",
        "lone-surrogate",
    ],
)
async def test_p5_10_bad_message_gets_error_and_connection_still_completes_a_turn(proxy, fake, frame, code):
    with trio.fail_after(DEADLINE):
        async with proxy.session(fake) as (client, upstream):
            await client.send_text(frame)
            error = await client.next("Error")
            assert error["code"] == code
            assert error["description"]
            await complete_text_turn(client, upstream)
            # Nothing went upstream for the bad frame: the turn's item follows the setup directly.
            assert upstream_types(upstream)[:2] == ["session.update", "conversation.item.create"]
            assert client.close_code is None


async def test_p5_11_oversize_frame_closes_with_1009_and_the_server_survives(proxy_factory, fake):
    proxy = await proxy_factory(max_frame_bytes=4096)
    with trio.fail_after(DEADLINE):
        async with proxy.session(fake) as (client, upstream):
            await client.send_audio(b"\x00" * 4096)  # at the limit: fine
            await upstream.wait_audio(4096)
            await client.send_audio(b"\x00" * 4097)
            assert await client.wait_closed() == 1009
            assert await upstream.wait_closed() == 1000  # P2.5: its upstream is closed normally
        async with proxy.connect() as client:
            await client.settings()
            await client.next("SettingsApplied")
            await complete_text_turn(client, await fake.next_connection())


async def test_p5_11_oversize_text_frame_too(proxy_factory, fake):
    proxy = await proxy_factory(max_frame_bytes=2048)
    with trio.fail_after(DEADLINE):
        async with proxy.connect() as client:
            await client.next("Welcome")
            await client.send({"type": "InjectUserMessage", "content": "x" * 4000})
            assert await client.wait_closed() == 1009


async def test_p3_6_audio_before_settings_is_held_then_delivered_in_order(proxy, fake):
    frames = [bytes([n]) * 480 for n in range(1, 9)]
    with trio.fail_after(DEADLINE):
        async with proxy.connect() as client:
            for frame in frames[:4]:
                await client.send_audio(frame)
            await client.settings()
            for frame in frames[4:]:
                await client.send_audio(frame)
            await client.next("SettingsApplied")
            upstream = await fake.next_connection()
            assert await upstream.wait_audio(sum(map(len, frames))) == b"".join(frames)
            kinds = upstream_types(upstream)
            # P3.6: no append before the session was updated.
            assert kinds[0] == "session.update"
            assert set(kinds[1:]) == {"input_audio_buffer.append"}
            assert client.close_code is None


async def test_p3_7_invalid_settings_then_a_corrected_one(proxy, fake):
    bad = copy.deepcopy(DEFAULT_SETTINGS)
    bad["audio"]["input"]["sample_rate"] = "16000"
    unsupported = copy.deepcopy(DEFAULT_SETTINGS)
    unsupported["audio"]["output"]["encoding"] = "opus"
    with trio.fail_after(DEADLINE):
        async with proxy.connect() as client:
            await client.settings(bad)
            first = await client.next("Error")
            assert first["code"] == "INVALID_SETTINGS" and "audio.input.sample_rate" in first["description"]
            await client.settings(unsupported)
            second = await client.next("Error")
            assert second["code"] == "INVALID_SETTINGS" and "audio.output.encoding" in second["description"]
            await client.settings()
            await client.next("SettingsApplied")
            upstream = await fake.next_connection()
            await complete_text_turn(client, upstream)
            assert upstream_types(upstream).count("session.update") == 1  # nothing for the bad ones


async def test_p5_8_keepalive_sends_nothing_upstream(proxy, fake):
    with trio.fail_after(DEADLINE):
        async with proxy.connect() as client:
            await client.send({"type": "KeepAlive"})
            await client.settings()
            await client.next("SettingsApplied")
            upstream = await fake.next_connection()
            for _ in range(3):
                await client.send({"type": "KeepAlive"})
            await complete_text_turn(client, upstream)
            assert upstream_types(upstream)[:2] == ["session.update", "conversation.item.create"]
            assert not client.messages("Error")


@pytest.mark.parametrize(
    "frame",
    ["{garbage", b"\x00\x01binary", json.dumps({"type": "response.hologram.delta", "delta": "x"}), "[]"],
    ids=["not-json", "binary", "unknown-type", "not-an-object"],
)
async def test_p6_3_unusable_upstream_frame_is_dropped_and_the_connection_survives(proxy, fake, frame):
    with trio.fail_after(DEADLINE):
        async with proxy.session(fake) as (client, upstream):
            await upstream.send_raw(frame)
            await complete_text_turn(client, upstream)
            assert [t for t in client.types() if t not in ("Welcome", "SettingsApplied")] == [
                "ConversationText", "AgentThinking", "AgentStartedSpeaking",
                "<audio>", "<audio>", "<audio>", "ConversationText", "AgentAudioDone", "LatencyReport",
            ]
