"""deepgram-sdk 7.17's own socket client, driving every message it added (README "Deepgram V1 coverage").

As in tests/test_deepgram_sdk.py, the SDK's synchronous client runs in a
worker thread against the proxy and the fake upstream. Each message it
receives must parse into the SDK's own model for its type, and validate
against the oracle (P1.4) with nothing the schema does not name.
"""

from __future__ import annotations

import json
from typing import Any

import deepgram.types as dgtypes
import trio
from deepgram.agent.v1 import types as agent_types
from deepgram.agent.v1.types.agent_v1update_listen_listen_provider import AgentV1UpdateListenListenProvider_V2

from proxy.testing import DEFAULT_REPLY, speak_reply

from .endpoint_server import endpoint_server
from .oracles import validate_deepgram_server_message
from .test_deepgram_sdk import run_in_thread, sdk_client, sdk_settings

CHUNK = b"\x01\x00" * 480  # 20 ms of PCM16 at 24 kHz

SDK_TYPES: dict[str, tuple[type, ...]] = {
    "Welcome": (agent_types.AgentV1Welcome,),
    "SettingsApplied": (agent_types.AgentV1SettingsApplied,),
    "ConversationText": (agent_types.AgentV1ConversationText,),
    "AgentThinking": (agent_types.AgentV1AgentThinking,),
    "AgentStartedSpeaking": (agent_types.AgentV1AgentStartedSpeaking,),
    "AgentAudioDone": (agent_types.AgentV1AgentAudioDone,),
    "UserStartedSpeaking": (agent_types.AgentV1UserStartedSpeaking,),
    "Warning": (agent_types.AgentV1Warning,),
    "Error": (agent_types.AgentV1Error,),
    "FunctionCallRequest": (agent_types.AgentV1FunctionCallRequest,),
    "ListenUpdated": (agent_types.AgentV1ListenUpdated,),
    "ThinkLiveUpdated": (agent_types.AgentV1ThinkLiveUpdated,),
    "LatencyReport": (agent_types.AgentV1LatencyReport,),
    "FunctionCallCancelled": (agent_types.AgentV1FunctionCallCancelled,),
    "FunctionCallResponse": (agent_types.AgentV1ReceiveFunctionCallResponse,),
    "History": (agent_types.ConversationHistoryMessage, agent_types.FunctionCallHistoryMessage),
    "__customFromThinkProvider": (agent_types.AgentV1CustomFromThinkProvider,),
}


def receive_until(socket, wanted: type, received: list, test=None) -> Any:
    """Typed messages until one of type `wanted` (passing `test`) arrives; each one checked."""
    while True:
        message = socket.recv()
        received.append(message)
        if isinstance(message, bytes):
            continue
        if isinstance(message, dict):
            raise AssertionError(f"the SDK could not parse {message!r} into one of its types")
        assert isinstance(message, SDK_TYPES[message.type]), f"{message.type} parsed as {type(message).__name__}"
        validate_deepgram_server_message(message.model_dump(mode="json", exclude_unset=True))
        if isinstance(message, wanted) and (test is None or test(message)):
            return message


def names(received: list) -> list[str]:
    return ["<audio>" if isinstance(m, bytes) else m.type for m in received]


def scripted(*steps):
    """A responder playing `steps` in turn, one per response.create (then the default reply)."""
    queue = list(steps)

    async def respond(connection, create):
        step = queue.pop(0) if queue else speak_reply
        await step(connection, create)

    return respond


async def converse(function, *args) -> list:
    with trio.fail_after(15):
        return await run_in_thread(function, *args)


# ------------------------------------------------------------- ForceEndTurn


async def test_sdk_push_to_talk_with_turn_detection_none_completes_spoken_turns(proxy_factory, fake):
    """OPENAI_PROXY_TURN_DETECTION=none: audio, then ForceEndTurn ends each turn (README, push-to-talk)."""
    proxy = await proxy_factory(turn_detection="none")

    def conversation() -> list:
        received: list = []
        with sdk_client(proxy.server.port).agent.v1.connect() as socket:
            socket.send_settings(sdk_settings())
            receive_until(socket, agent_types.AgentV1SettingsApplied, received)
            for _ in range(2):  # two spoken turns, each released by ForceEndTurn
                for _ in range(10):
                    socket.send_media(CHUNK)
                socket.send_force_end_turn()
                receive_until(socket, agent_types.AgentV1LatencyReport, received)
        return received

    received = await converse(conversation)
    upstream = await fake.next_connection()
    turn = ["AgentThinking", "AgentStartedSpeaking", "<audio>", "<audio>", "<audio>", "ConversationText",
            "AgentAudioDone", "LatencyReport"]
    assert names(received) == ["Welcome", "SettingsApplied", *turn, *turn]
    assert all(m.total_latency is not None for m in received if isinstance(m, agent_types.AgentV1LatencyReport))
    assert upstream.of_type("session.update")[0]["session"]["audio"]["input"]["turn_detection"] is None
    kinds = [e["type"] for e in upstream.received if e["type"] != "input_audio_buffer.append"]
    assert kinds == ["session.update", "input_audio_buffer.commit", "response.create",
                     "input_audio_buffer.commit", "response.create"]
    assert bytes(upstream.audio) == CHUNK * 20


# --------------------------------------------- UpdateListen, Think Live, injection


async def test_sdk_update_listen_and_update_think_live(proxy, fake):
    def conversation() -> list:
        received: list = []
        with sdk_client(proxy.server.port).agent.v1.connect() as socket:
            socket.send_settings(sdk_settings())
            receive_until(socket, agent_types.AgentV1SettingsApplied, received)
            socket.send_update_listen(agent_types.AgentV1UpdateListen(listen=agent_types.AgentV1UpdateListenListen(
                provider=AgentV1UpdateListenListenProvider_V2(model="flux-general-en", keyterms=["Zoom", "Glide"]))))
            receive_until(socket, agent_types.AgentV1ListenUpdated, received)
            socket.send_update_think_live(agent_types.AgentV1UpdateThinkLive(think_live=dgtypes.ThinkLiveSettingsV1(
                provider=dgtypes.DeepgramThinkLiveProviderV1(agent_backchannel_sensitivity=0.4, presence_check_max_count=0))))
            receive_until(socket, agent_types.AgentV1ThinkLiveUpdated, received)
        return received

    received = await converse(conversation)
    assert names(received) == ["Welcome", "SettingsApplied", "ListenUpdated", "Warning", "ThinkLiveUpdated"]
    assert received[3].code == "THINK_LIVE_UNSUPPORTED" and "backchannels" in received[3].description
    upstream = await fake.next_connection()
    listen = upstream.of_type("session.update")[1]["session"]
    assert listen["audio"]["input"]["transcription"] == {
        "model": "gpt-4o-mini-transcribe", "language": "en", "prompt": "Zoom, Glide"}
    assert len(upstream.of_type("session.update")) == 2  # Think Live sends nothing upstream


async def test_sdk_dynamic_agent_message_is_spoken_like_any_turn(proxy, fake):
    def conversation() -> list:
        received: list = []
        with sdk_client(proxy.server.port).agent.v1.connect() as socket:
            socket.send_settings(sdk_settings())
            receive_until(socket, agent_types.AgentV1SettingsApplied, received)
            socket.send_inject_dynamic_agent_message(agent_types.AgentV1InjectDynamicAgentMessage(behavior="queue"))
            receive_until(socket, agent_types.AgentV1LatencyReport, received)
        return received

    received = await converse(conversation)
    assert names(received)[-3:] == ["ConversationText", "AgentAudioDone", "LatencyReport"]
    upstream = await fake.next_connection()
    assert "response" not in upstream.of_type("response.create")[0]  # no verbatim line: the model writes it


async def test_sdk_custom_think_provider_events_both_ways(proxy_factory, fake):
    proxy = await proxy_factory(forward_untranslated=True)
    item = {"type": "message", "role": "user", "content": [{"type": "input_text", "text": "raw hello"}]}

    def conversation() -> list:
        received: list = []
        with sdk_client(proxy.server.port).agent.v1.connect() as socket:
            socket.send_settings(sdk_settings())
            receive_until(socket, agent_types.AgentV1SettingsApplied, received)
            socket.send_custom_to_think_provider(agent_types.AgentV1CustomToThinkProvider(
                content={"type": "conversation.item.create", "item": item}))
            receive_until(socket, agent_types.AgentV1CustomFromThinkProvider, received,
                          lambda m: m.content["type"] == "rate_limits.updated")
            socket.send_custom_to_think_provider(agent_types.AgentV1CustomToThinkProvider(content={"type": "made.up"}))
            receive_until(socket, agent_types.AgentV1Error, received)
        return received

    async def upstream_side() -> None:
        upstream = await fake.next_connection()
        create = await upstream.next("conversation.item.create")
        assert create["item"] == item and create["event_id"].startswith("px")
        await upstream.send({"type": "rate_limits.updated", "rate_limits": []})

    async with trio.open_nursery() as nursery:
        nursery.start_soon(upstream_side)
        received = await converse(conversation)
    assert received[-1].code == "INVALID_MESSAGE"
    forwarded = [m.content["type"] for m in received if isinstance(m, agent_types.AgentV1CustomFromThinkProvider)]
    assert "rate_limits.updated" in forwarded and "conversation.item.added" not in forwarded  # translated ones stay


# ----------------------------------------------- cancelled calls and History


def weather_function(**extra: Any) -> dgtypes.ThinkSettingsV1FunctionsItem:
    return dgtypes.ThinkSettingsV1FunctionsItem(
        name="get_weather", description="Weather for a city",
        parameters={"type": "object", "properties": {"city": {"type": "string"}}}, **extra)


def settings_with(functions: list, *, history: bool = False) -> agent_types.AgentV1Settings:
    settings = sdk_settings()
    think = settings.agent.think.model_copy(update={"functions": functions})
    update: dict[str, Any] = {"agent": settings.agent.model_copy(update={"think": think})}
    if history:
        update["flags"] = agent_types.AgentV1SettingsFlags(history=True)
    return settings.model_copy(update=update)


async def cancelled_call(connection, create) -> None:
    response_id = await connection.begin_response(create)
    await connection.send({"type": "response.function_call_arguments.done", "response_id": response_id,
                           "item_id": "item_c", "output_index": 0, "call_id": "call_1", "name": "get_weather",
                           "arguments": '{"city":"Oslo"}'})
    await connection.end_response(response_id, status="cancelled")


async def test_sdk_function_call_cancelled_and_history(proxy, fake):
    fake.responder = scripted(cancelled_call)

    def conversation() -> list:
        received: list = []
        with sdk_client(proxy.server.port).agent.v1.connect() as socket:
            socket.send_settings(settings_with([weather_function()], history=True))
            receive_until(socket, agent_types.AgentV1SettingsApplied, received)
            socket.send_inject_user_message(agent_types.AgentV1InjectUserMessage(content="Weather in Oslo?"))
            cancelled = receive_until(socket, agent_types.AgentV1FunctionCallCancelled, received)
            assert [(f.id, f.name) for f in cancelled.functions] == [("call_1", "get_weather")]
            # Too late: the client must not answer, and an answer must not start a follow-up.
            socket.send_function_call_response(agent_types.AgentV1SendFunctionCallResponse(
                id="call_1", name="get_weather", content="sunny"))
            socket.send_inject_user_message(agent_types.AgentV1InjectUserMessage(content="Never mind."))
            receive_until(socket, agent_types.AgentV1LatencyReport, received)
        return received

    received = await converse(conversation)
    upstream = await fake.next_connection()
    items = [e["item"]["type"] for e in upstream.of_type("conversation.item.create")]
    assert items == ["message", "message"]  # no function_call_output for the cancelled call
    assert len(upstream.of_type("response.create")) == 2
    history = [(m.role, m.content) for m in received if isinstance(m, agent_types.ConversationHistoryMessage)]
    assert history == [("user", "Weather in Oslo?"), ("user", "Never mind."), ("assistant", DEFAULT_REPLY)]


# ------------------------------------------------------ server-side functions


async def calls_weather(connection, create) -> None:
    await connection.play_function_calls([("get_weather", '{"city":"Oslo"}')], create)


async def test_sdk_server_side_function_on_an_allowlisted_local_endpoint(proxy_factory, fake):
    fake.responder = scripted(calls_weather)
    with endpoint_server() as server:
        proxy = await proxy_factory(function_hosts=("127.0.0.1",))  # listed explicitly: loopback allowed
        endpoint = dgtypes.ThinkSettingsV1FunctionsItemEndpoint(
            url=server.url("/weather"), method="POST", headers={"x-api-key": "fn-key"})

        def conversation() -> list:
            received: list = []
            with sdk_client(proxy.server.port).agent.v1.connect() as socket:
                socket.send_settings(settings_with([weather_function(endpoint=endpoint)], history=True))
                receive_until(socket, agent_types.AgentV1SettingsApplied, received)
                socket.send_inject_user_message(agent_types.AgentV1InjectUserMessage(content="Weather in Oslo?"))
                receive_until(socket, agent_types.AgentV1ReceiveFunctionCallResponse, received)
                receive_until(socket, agent_types.AgentV1AgentAudioDone, received,
                              lambda m: any(isinstance(r, bytes) for r in received))
            return received

        received = await converse(conversation)
    [request] = [m for m in received if isinstance(m, agent_types.AgentV1FunctionCallRequest)]
    assert request.functions[0].client_side is False  # the client must not answer it
    [response] = [m for m in received if isinstance(m, agent_types.AgentV1ReceiveFunctionCallResponse)]
    assert response.id == request.functions[0].id and response.name == "get_weather"
    assert json.loads(response.content) == {"city": "Oslo", "forecast": "sunny"}
    [seen] = server.requests
    assert json.loads(seen.body) == {"city": "Oslo"} and seen.headers["x-api-key"] == "fn-key"
    upstream = await fake.next_connection()
    outputs = [e["item"] for e in upstream.of_type("conversation.item.create") if e["item"]["type"] == "function_call_output"]
    assert outputs == [{"type": "function_call_output", "call_id": response.id, "output": response.content}]
    assert len(upstream.of_type("response.create")) == 2  # the P5.2 follow-up
    assert "endpoint" not in json.dumps(upstream.of_type("session.update")[0])
    rounds = [m for m in received if isinstance(m, agent_types.FunctionCallHistoryMessage)]
    assert [(c.name, c.client_side, c.response) for r in rounds for c in r.function_calls] == [
        ("get_weather", False, response.content)]


async def test_sdk_server_side_function_not_listed_or_loopback_is_refused(proxy_factory, fake):
    fake.responder = scripted(calls_weather)
    with endpoint_server() as server:
        unlisted = await proxy_factory()  # OPENAI_PROXY_FUNCTION_HOSTS empty, the default
        by_name = await proxy_factory(function_hosts=("localhost",))  # a name is no licence for loopback

        def refused_settings() -> list:
            received: list = []
            endpoint = dgtypes.ThinkSettingsV1FunctionsItemEndpoint(url=server.url("/weather"))
            with sdk_client(unlisted.server.port).agent.v1.connect() as socket:
                socket.send_settings(settings_with([weather_function(endpoint=endpoint)]))
                receive_until(socket, agent_types.AgentV1Error, received)
            return received

        def refused_call() -> list:
            received: list = []
            endpoint = dgtypes.ThinkSettingsV1FunctionsItemEndpoint(url=server.url("/weather", host="localhost"))
            with sdk_client(by_name.server.port).agent.v1.connect() as socket:
                socket.send_settings(settings_with([weather_function(endpoint=endpoint)]))
                receive_until(socket, agent_types.AgentV1SettingsApplied, received)
                socket.send_inject_user_message(agent_types.AgentV1InjectUserMessage(content="Weather in Oslo?"))
                receive_until(socket, agent_types.AgentV1ReceiveFunctionCallResponse, received)
                # The refusal is the function's output: the model still answers the turn.
                receive_until(socket, agent_types.AgentV1AgentAudioDone, received,
                              lambda m: any(isinstance(r, bytes) for r in received))
            return received

        first = await converse(refused_settings)
        second = await converse(refused_call)
    assert first[-1].code == "INVALID_SETTINGS" and "get_weather" in first[-1].description
    assert "OPENAI_PROXY_FUNCTION_HOSTS" in first[-1].description
    [refusal] = [m for m in second if isinstance(m, agent_types.AgentV1ReceiveFunctionCallResponse)]
    assert "non-public address" in json.loads(refusal.content)["error"]
    assert server.requests == []  # refused before any request was made


# ------------------------------------------------- every field of Settings


def every_field_settings() -> agent_types.AgentV1Settings:
    """An AgentV1Settings with every field 7.17 defines set, through the SDK's own validation."""
    return agent_types.AgentV1Settings.model_validate({
        "tags": ["support", "beta"], "experimental": True, "mip_opt_out": True, "flags": {"history": True},
        "audio": {"input": {"encoding": "linear16", "sample_rate": 16000},
                  "output": {"encoding": "linear16", "sample_rate": 16000, "bitrate": 256000, "container": "none"}},
        "agent": {
            "language": "en",
            "context": {"messages": [
                {"type": "History", "role": "user", "content": "Earlier question"},
                {"type": "History", "function_calls": [{"id": "call_0", "name": "get_weather", "client_side": True,
                                                        "arguments": "{}", "response": "rain"}]},
            ]},
            "listen": {"provider": {"version": "v2", "type": "deepgram", "model": "flux-general-en",
                                    "language_hints": ["en"], "eot_threshold": 0.7, "eager_eot_threshold": 0.5,
                                    "eot_timeout_ms": 3000, "keyterms": ["Oslo"]}},
            "think": [
                {"provider": {"type": "anthropic", "version": "v1", "model": "claude-3-5-haiku-latest", "temperature": 0.2},
                 "endpoint": {"url": "https://llm.example/v1", "headers": {"x": "y"}}, "prompt": "unused", "context_length": "max"},
                {"provider": {"type": "open_ai", "version": "v1", "model": "gpt-4o-mini", "temperature": 0.5,
                              "reasoning_mode": "low"},
                 "prompt": "You are the weather desk.", "context_length": 4096,
                 "functions": [{"name": "get_weather", "description": "Weather", "parameters": {"type": "object"},
                                "defer_until_eot": True, "initial_agent_filler": True, "agent_filler_max_count": 2,
                                "agent_filler_interval_ms": 800}]},
            ],
            "think_live": {"provider": {"type": "deepgram", "version": "v1", "agent_backchannel_sensitivity": 0.3,
                                        "presence_check_max_count": 1, "presence_check_interval_ms": 8000,
                                        "frustration_max_count": 3, "restricted_terms": ["refund"]}},
            "speak": [
                {"provider": {"type": "eleven_labs", "version": "v1", "model_id": "eleven_turbo_v2_5", "language": "en",
                              "language_code": "en"}, "endpoint": {"url": "wss://tts.example", "headers": {"k": "v"}}},
                {"provider": {"type": "cartesia", "model_id": "sonic-2", "voice": {"mode": "id", "id": "abc"},
                              "language": "en", "volume": 1.0}},
                {"provider": {"type": "open_ai", "version": "v1", "model": "tts-1", "voice": "sage"}},
            ],
            "greeting": "Weather desk, hello.",
        },
    })


async def test_sdk_settings_with_every_field_is_applied(proxy, fake):
    """Every field AgentV1Settings accepts is tolerated; what has a Realtime meaning is used."""

    def conversation() -> list:
        received: list = []
        with sdk_client(proxy.server.port).agent.v1.connect() as socket:
            socket.send_settings(every_field_settings())
            receive_until(socket, agent_types.AgentV1SettingsApplied, received)
            receive_until(socket, agent_types.ConversationHistoryMessage, received)  # the greeting's History
        return received

    received = await converse(conversation)
    assert not [m for m in received if isinstance(m, agent_types.AgentV1Error)]
    warnings = [(m.code, m.description) for m in received if isinstance(m, agent_types.AgentV1Warning)]
    assert [code for code, _ in warnings] == ["FALLBACK_IGNORED", "FALLBACK_IGNORED", "THINK_LIVE_UNSUPPORTED"]
    assert "agent.think[1] is used" in warnings[0][1] and "agent.speak[2] is used" in warnings[1][1]
    upstream = await fake.next_connection()
    session = upstream.of_type("session.update")[0]["session"]
    assert session["instructions"] == "You are the weather desk."
    assert [tool["name"] for tool in session["tools"]] == ["get_weather"]
    assert session["audio"]["output"]["voice"] == "sage"
    assert session["audio"]["input"]["transcription"] == {"model": "gpt-4o-mini-transcribe", "language": "en", "prompt": "Oslo"}
    text = json.dumps(session)
    for absent in ("llm.example", "tts.example", "eot", "filler", "refund", "context_length", "tags"):
        assert absent not in text
    # P3.4: the context in both History shapes went upstream as items.
    with trio.fail_after(5):
        items = [(await upstream.next("conversation.item.create"))["item"]["type"] for _ in range(4)]
    assert items == ["message", "function_call", "function_call_output", "message"]  # then the greeting
