"""The `deepgram-sdk` package's own agent client against the proxy (P2.10, P1.2, P1.4).

A Deepgram application changes nothing but its base URL: the SDK connects to
`<agent>/v1/agent/converse` with `Authorization: Token <key>`, sends its typed
models and parses what the proxy answers into its own types. The SDK client is
synchronous (the `websockets` sync client), so it runs in a worker thread
while the proxy and the fake upstream run in the test's Trio loop.
"""

from __future__ import annotations

import deepgram.types as dgtypes
import pytest
import trio
from deepgram import DeepgramClient
from deepgram.agent.v1 import types as agent_types
from deepgram.environment import DeepgramClientEnvironment

from proxy.testing import DEFAULT_AUDIO, DEFAULT_REPLY

from .conftest import TEST_KEY

# What the SDK's typed recv() must produce for each message the proxy sends.
SDK_TYPES = {
    "Welcome": agent_types.AgentV1Welcome,
    "SettingsApplied": agent_types.AgentV1SettingsApplied,
    "ConversationText": agent_types.AgentV1ConversationText,
    "AgentThinking": agent_types.AgentV1AgentThinking,
    "AgentStartedSpeaking": agent_types.AgentV1AgentStartedSpeaking,
    "AgentAudioDone": agent_types.AgentV1AgentAudioDone,
    "UserStartedSpeaking": agent_types.AgentV1UserStartedSpeaking,
    "Warning": agent_types.AgentV1Warning,
    "Error": agent_types.AgentV1Error,
}


def sdk_client(port: int) -> DeepgramClient:
    base = f"ws://127.0.0.1:{port}"
    environment = DeepgramClientEnvironment(
        base="http://127.0.0.1:9", production=base, agent=base, agent_rest="http://127.0.0.1:9"
    )
    return DeepgramClient(api_key="dg-app-key-0001", environment=environment)


def sdk_settings(
    *, greeting: str | None = None, encoding: str = "linear16", sample_rate: int = 24000
) -> agent_types.AgentV1Settings:
    return agent_types.AgentV1Settings(
        audio=agent_types.AgentV1SettingsAudio(
            input=agent_types.AgentV1SettingsAudioInput(encoding=encoding, sample_rate=sample_rate),
            output=agent_types.AgentV1SettingsAudioOutput(encoding=encoding, sample_rate=sample_rate, container="none"),
        ),
        agent=agent_types.AgentV1SettingsAgent(
            language="en",
            think=dgtypes.ThinkSettingsV1(
                provider=dgtypes.ThinkSettingsV1Provider_OpenAi(model="gpt-4o-mini", temperature=0.7),
                prompt="You are a terse assistant.",
            ),
            speak=dgtypes.SpeakSettingsV1(provider=dgtypes.SpeakSettingsV1Provider_OpenAi(model="tts-1", voice="alloy")),
            greeting=greeting,
        ),
    )


def receive_until(socket, wanted: type, received: list) -> None:
    """Read typed messages (and audio bytes) until one of type `wanted` arrives."""
    while True:
        message = socket.recv()
        received.append(message)
        if isinstance(message, dict):
            raise AssertionError(f"the SDK could not parse {message!r} into one of its types")
        if isinstance(message, wanted):
            return


def names(received: list) -> list[str]:
    return ["<audio>" if isinstance(m, bytes) else m.type for m in received]


def assert_sdk_types(received: list) -> None:
    """Every JSON message became the SDK's own model of that type (not a fallback)."""
    for message in received:
        if isinstance(message, bytes):
            continue
        expected = SDK_TYPES[message.type]
        assert type(message) is expected, f"{message.type} parsed as {type(message).__name__}"


async def run_in_thread(function, *args):
    # Abandon the worker thread on cancel, so a stuck recv() fails the test
    # at its deadline instead of hanging it.
    return await trio.to_thread.run_sync(function, *args, abandon_on_cancel=True)


async def test_sdk_text_turn_through_the_deepgram_path(proxy, fake):
    def conversation() -> list:
        received: list = []
        with sdk_client(proxy.server.port).agent.v1.connect() as socket:
            receive_until(socket, agent_types.AgentV1Welcome, received)
            socket.send_settings(sdk_settings(greeting="Hi, I am the agent."))
            receive_until(socket, agent_types.AgentV1SettingsApplied, received)
            receive_until(socket, agent_types.AgentV1ConversationText, received)  # the greeting (P3.5)
            socket.send_keep_alive(agent_types.AgentV1KeepAlive())
            socket.send_inject_user_message(agent_types.AgentV1InjectUserMessage(content="What can you do?"))
            receive_until(socket, agent_types.AgentV1AgentAudioDone, received)
        return received

    with trio.fail_after(10):
        received = await run_in_thread(conversation)
        upstream = await fake.next_connection()
        assert await upstream.wait_closed() == 1000  # the SDK closed; P2.5

    assert_sdk_types(received)
    assert names(received) == [
        "Welcome",
        "SettingsApplied",
        "ConversationText",
        "ConversationText",
        "AgentThinking",
        "AgentStartedSpeaking",
        "<audio>",
        "<audio>",
        "<audio>",
        "ConversationText",
        "AgentAudioDone",
    ]
    texts = [(m.role, m.content) for m in received if isinstance(m, agent_types.AgentV1ConversationText)]
    assert texts == [
        ("assistant", "Hi, I am the agent."),
        ("user", "What can you do?"),
        ("assistant", DEFAULT_REPLY),
    ]
    assert b"".join(m for m in received if isinstance(m, bytes)) == DEFAULT_AUDIO
    started = next(m for m in received if isinstance(m, agent_types.AgentV1AgentStartedSpeaking))
    assert started.total_latency >= 0 and started.tts_latency >= 0 and started.ttt_latency >= 0

    # The SDK's credentials stop at the proxy; upstream sees only the proxy's key (P1.5).
    assert upstream.headers["authorization"] == f"Bearer {TEST_KEY}"
    assert upstream.path.startswith("/v1/realtime")
    session = upstream.of_type("session.update")[0]["session"]
    assert session["instructions"] == "You are a terse assistant."
    assert session["audio"]["output"]["voice"] == "alloy"
    assert "temperature" not in str(session)  # P4


@pytest.mark.parametrize("encoding", ["mulaw", "alaw"])
async def test_sdk_g711_media_reaches_the_upstream_unchanged(proxy, fake, encoding):
    """P4, P5.9: G.711 passes through; the SDK's send_media frames arrive as appends, in order."""
    fake.responder = None
    frames = [bytes([0x10 + n]) * 160 for n in range(10)]

    def stream_audio() -> list:
        received: list = []
        with sdk_client(proxy.server.port).agent.v1.connect() as socket:
            receive_until(socket, agent_types.AgentV1Welcome, received)
            socket.send_settings(sdk_settings(encoding=encoding, sample_rate=8000))
            receive_until(socket, agent_types.AgentV1SettingsApplied, received)
            for frame in frames:
                socket.send_media(frame)
            receive_until(socket, agent_types.AgentV1UserStartedSpeaking, received)
        return received

    with trio.fail_after(10):
        async with trio.open_nursery() as nursery:
            result: list = []

            async def client_side() -> None:
                result.extend(await run_in_thread(stream_audio))

            nursery.start_soon(client_side)
            upstream = await fake.next_connection()
            assert await upstream.wait_audio(1600) == b"".join(frames)
            await upstream.send({"type": "input_audio_buffer.speech_started", "audio_start_ms": 0, "item_id": "item_1"})
        assert await upstream.wait_closed() == 1000

    assert_sdk_types(result)
    assert names(result) == ["Welcome", "SettingsApplied", "UserStartedSpeaking"]
    expected_format = {"mulaw": "audio/pcmu", "alaw": "audio/pcma"}[encoding]
    session = upstream.of_type("session.update")[0]["session"]
    assert session["audio"]["input"]["format"] == {"type": expected_format}
    assert session["audio"]["output"]["format"] == {"type": expected_format}


async def test_sdk_parses_warning_and_error_and_the_session_goes_on(proxy, fake):
    """P4 voice row (one Warning VOICE_IGNORED), P5.1/P5.10 (Error), as the SDK's own types."""
    settings = sdk_settings()
    agent = settings.agent.model_copy(
        update={"speak": dgtypes.SpeakSettingsV1(provider=dgtypes.SpeakSettingsV1Provider_Deepgram(model="aura-2-thalia-en"))}
    )
    settings = settings.model_copy(update={"agent": agent})

    def conversation() -> list:
        received: list = []
        with sdk_client(proxy.server.port).agent.v1.connect() as socket:
            socket.send_settings(settings)
            receive_until(socket, agent_types.AgentV1SettingsApplied, received)
            socket.send_inject_user_message(agent_types.AgentV1InjectUserMessage(content=""))
            receive_until(socket, agent_types.AgentV1Error, received)
            socket.send_inject_user_message(agent_types.AgentV1InjectUserMessage(content="And now?"))
            receive_until(socket, agent_types.AgentV1AgentAudioDone, received)
        return received

    with trio.fail_after(10):
        received = await run_in_thread(conversation)
    assert_sdk_types(received)
    warnings = [m for m in received if isinstance(m, agent_types.AgentV1Warning)]
    assert [w.code for w in warnings] == ["VOICE_IGNORED"]
    errors = [m for m in received if isinstance(m, agent_types.AgentV1Error)]
    assert [e.code for e in errors] == ["INVALID_MESSAGE"]
    assert names(received)[-1] == "AgentAudioDone"
    upstream = await fake.next_connection()
    assert "voice" not in upstream.of_type("session.update")[0]["session"]["audio"]["output"]
