"""P4: the `Settings` -> `session.update` field map, row by row.

Pure tests feed a Session one Settings and read the session.update it sends
(validated against the GA client-event schema); two integration tests check
the same payload as the fake upstream receives it, with the proxy's options.
"""

from __future__ import annotations

import copy
import json
from typing import Any

import pytest
import trio

from proxy.protocol.wire import encode_client, encode_upstream
from proxy.testing import DEFAULT_SETTINGS
from proxy.translate import ClientText, Opened, Session, SessionOptions, ToClient, ToUpstream

from .oracles import validate_deepgram_server_message, validate_openai_client_event


def settings(agent: dict[str, Any] | None = None, audio: dict[str, Any] | None = None) -> dict[str, Any]:
    result = copy.deepcopy(DEFAULT_SETTINGS)
    if agent is not None:
        result["agent"] = agent
    if audio is not None:
        result["audio"] = audio
    return result


def translate(settings_message: dict[str, Any], **options: Any) -> tuple[dict[str, Any], list[dict[str, Any]]]:
    """Feed one Settings; return (the session of its session.update, the client messages)."""
    # AGENT's "book" function has an endpoint: its host must be allowed (server-side functions).
    options.setdefault("function_hosts", ("example.test",))
    session = Session("00000000-0000-4000-8000-000000000001", SessionOptions(**options))
    session.handle(Opened(), 0.0)
    upstream, client = [], []
    for action in session.handle(ClientText(json.dumps(settings_message)), 0.0):
        if isinstance(action, ToUpstream):
            event = json.loads(encode_upstream(action.event))
            validate_openai_client_event(event)
            upstream.append(event)
        elif isinstance(action, ToClient):
            message = json.loads(encode_client(action.message))
            validate_deepgram_server_message(message)
            client.append(message)
    assert [event["type"] for event in upstream] == ["session.update"], client
    return upstream[0]["session"], client


AGENT = {
    "language": "en",
    "listen": {"provider": {"type": "deepgram", "model": "nova-3"}},
    "think": {
        "provider": {"type": "open_ai", "model": "gpt-4o-mini", "temperature": 0.3},
        "prompt": "You are a ticket agent.",
        "functions": [
            {
                "name": "book",
                "description": "Book a seat",
                "parameters": {"type": "object", "properties": {"seat": {"type": "string"}}, "required": ["seat"]},
                "endpoint": {"url": "https://example.test/book", "method": "post", "headers": {"x": "y"}},
                "client_side": False,
            },
            {"name": "hang_up", "description": "End the call", "client_side": True},
        ],
    },
    "speak": {"provider": {"type": "open_ai", "model": "tts-1", "voice": "coral"}},
}


def test_p4_type_instructions_and_no_temperature():
    session, client = translate(settings(AGENT))
    assert session["type"] == "realtime"
    assert session["instructions"] == "You are a ticket agent."
    assert "temperature" not in json.dumps(session)  # P4 last row
    assert client == []  # a usable voice: no warning


def test_p4_tools_drop_deepgram_only_keys():
    session, _ = translate(settings(AGENT))
    assert session["tools"] == [
        {
            "type": "function",
            "name": "book",
            "description": "Book a seat",
            "parameters": {"type": "object", "properties": {"seat": {"type": "string"}}, "required": ["seat"]},
        },
        {"type": "function", "name": "hang_up", "description": "End the call",
         "parameters": {"type": "object", "properties": {}}},
    ]
    assert "endpoint" not in json.dumps(session) and "client_side" not in json.dumps(session)


def test_p4_no_functions_no_tools_and_no_prompt_is_empty_instructions():
    session, _ = translate(settings({"think": {"provider": {"type": "open_ai"}}}))
    assert "tools" not in session
    assert session["instructions"] == ""


@pytest.mark.parametrize(
    "audio, input_format, output_format",
    [
        (
            {"input": {"encoding": "linear16", "sample_rate": 24000},
             "output": {"encoding": "linear16", "sample_rate": 24000, "container": "none"}},
            {"type": "audio/pcm", "rate": 24000},
            {"type": "audio/pcm", "rate": 24000},
        ),
        (
            {"input": {"encoding": "mulaw", "sample_rate": 8000},
             "output": {"encoding": "mulaw", "sample_rate": 8000, "container": "none"}},
            {"type": "audio/pcmu"},
            {"type": "audio/pcmu"},
        ),
        (
            {"input": {"encoding": "alaw", "sample_rate": 8000}, "output": {"encoding": "alaw", "sample_rate": 8000}},
            {"type": "audio/pcma"},
            {"type": "audio/pcma"},
        ),
        (
            {"input": {"encoding": "mulaw", "sample_rate": 8000}},  # output defaults to linear16 24000
            {"type": "audio/pcmu"},
            {"type": "audio/pcm", "rate": 24000},
        ),
        (
            {"input": {"encoding": "linear16", "sample_rate": 24000}, "output": {"encoding": "alaw"}},
            {"type": "audio/pcm", "rate": 24000},
            {"type": "audio/pcma"},
        ),
    ],
    ids=["linear16-24k", "mulaw", "alaw", "output-default", "mixed"],
)
def test_p4_audio_formats(audio, input_format, output_format):
    session, _ = translate(settings(audio=audio))
    assert session["audio"]["input"]["format"] == input_format
    assert session["audio"]["output"]["format"] == output_format


def test_p4_transcription_default_model_and_agent_language():
    session, _ = translate(settings(AGENT))
    assert session["audio"]["input"]["transcription"] == {"model": "gpt-4o-mini-transcribe", "language": "en"}


def test_p4_transcription_model_is_configurable_and_listen_language_wins():
    agent = copy.deepcopy(AGENT)
    agent["listen"]["provider"]["language"] = "de"
    session, _ = translate(settings(agent), transcription_model="whisper-1")
    assert session["audio"]["input"]["transcription"] == {"model": "whisper-1", "language": "de"}


def test_p4_no_language_given_sends_none():
    session, _ = translate(settings({"think": {"prompt": "p"}}))
    assert session["audio"]["input"]["transcription"] == {"model": "gpt-4o-mini-transcribe"}


@pytest.mark.parametrize(
    "mode, expected",
    [("server_vad", {"type": "server_vad"}), ("semantic_vad", {"type": "semantic_vad"}), ("none", None)],
)
def test_p4_turn_detection(mode, expected):
    session, _ = translate(settings(AGENT), turn_detection=mode)
    assert "turn_detection" in session["audio"]["input"]
    assert session["audio"]["input"]["turn_detection"] == expected


@pytest.mark.parametrize("voice", ["alloy", "ash", "ballad", "coral", "echo", "sage", "shimmer", "verse", "marin", "cedar"])
def test_p4_realtime_voice_is_sent(voice):
    agent = copy.deepcopy(AGENT)
    agent["speak"] = {"provider": {"type": "open_ai", "model": "tts-1", "voice": voice}}
    session, client = translate(settings(agent))
    assert session["audio"]["output"]["voice"] == voice
    assert client == []  # the provider's model (tts-1) is ignored silently


@pytest.mark.parametrize(
    "speak",
    [
        {"provider": {"type": "deepgram", "model": "aura-2-thalia-en"}},
        {"provider": {"type": "open_ai", "model": "tts-1", "voice": "nova"}},
        {"provider": {"type": "eleven_labs", "model_id": "eleven_turbo_v2", "voice": {"id": "abc"}}},
    ],
    ids=["deepgram-aura", "openai-tts-only-voice", "voice-object"],
)
def test_p4_unusable_voice_gives_exactly_one_warning(speak):
    agent = copy.deepcopy(AGENT)
    agent["speak"] = speak
    session, client = translate(settings(agent))
    assert "voice" not in session["audio"]["output"]
    assert [(m["type"], m["code"]) for m in client] == [("Warning", "VOICE_IGNORED")]


def test_p4_no_speak_block_no_voice_and_no_warning():
    agent = copy.deepcopy(AGENT)
    del agent["speak"]
    session, client = translate(settings(agent))
    assert "voice" not in session["audio"]["output"]
    assert client == []


def test_p4_provider_fallback_lists_use_the_first_entry():
    agent = copy.deepcopy(AGENT)
    agent["speak"] = [{"provider": {"type": "open_ai", "voice": "sage"}}, {"provider": {"type": "deepgram"}}]
    agent["think"] = [dict(AGENT["think"], prompt="first"), dict(AGENT["think"], prompt="second")]
    session, client = translate(settings(agent))
    assert session["audio"]["output"]["voice"] == "sage"
    assert session["instructions"] == "first"
    # SDK 7.x fallback lists: the entries not used are named, once per list.
    assert [m["code"] for m in client] == ["FALLBACK_IGNORED", "FALLBACK_IGNORED"]
    assert "agent.think[1] (open_ai)" in client[0]["description"]
    assert "agent.speak[1] (deepgram)" in client[1]["description"]


def test_p4_fallback_lists_use_the_first_entry_with_a_realtime_equivalent():
    """SDK 7.x: think/speak lists; the first OpenAI think provider and the first Realtime voice win."""
    agent = copy.deepcopy(AGENT)
    agent["think"] = [
        dict(AGENT["think"], provider={"type": "anthropic", "model": "claude-3-5-haiku-latest"}, prompt="claude"),
        dict(AGENT["think"], prompt="openai"),
    ]
    agent["speak"] = [
        {"provider": {"type": "deepgram", "model": "aura-2-thalia-en"}},
        {"provider": {"type": "open_ai", "model": "tts-1", "voice": "ash"}},
    ]
    session, client = translate(settings(agent))
    assert session["instructions"] == "openai"
    assert session["audio"]["output"]["voice"] == "ash"
    assert [m["code"] for m in client] == ["FALLBACK_IGNORED", "FALLBACK_IGNORED"]
    assert "agent.think[1] is used; agent.think[0] (anthropic) not" in client[0]["description"]
    assert "agent.speak[1] is used; agent.speak[0] (deepgram) not" in client[1]["description"]


@pytest.mark.parametrize("model, sent", [("gpt-realtime", True), ("gpt-4o-mini", False)])
def test_p4_model_only_when_a_realtime_model(model, sent):
    agent = copy.deepcopy(AGENT)
    agent["think"]["provider"]["model"] = model
    session, _ = translate(settings(agent))
    assert (session.get("model") == model) if sent else ("model" not in session)


# ---------------------------------------------------------------- integration


async def test_p4_session_update_as_the_upstream_receives_it(proxy_factory, fake):
    proxy = await proxy_factory(function_hosts=("example.test",))  # AGENT's "book" has an endpoint
    deepgram_voice = copy.deepcopy(AGENT)
    deepgram_voice["speak"] = {"provider": {"type": "deepgram", "model": "aura-2-thalia-en"}}
    with trio.fail_after(5):
        async with proxy.connect() as client:
            await client.settings(settings(deepgram_voice))
            await client.next("SettingsApplied")
            upstream = await fake.next_connection()
            update = await upstream.next("session.update")
            session = update["session"]
            assert session["type"] == "realtime"
            assert session["instructions"] == "You are a ticket agent."
            assert [tool["name"] for tool in session["tools"]] == ["book", "hang_up"]
            assert session["audio"]["input"]["turn_detection"] == {"type": "server_vad"}
            assert "voice" not in session["audio"]["output"]
            assert [m["code"] for m in client.messages("Warning")] == ["VOICE_IGNORED"]
            # One session.update and nothing else from a Settings without context or greeting.
            assert [event["type"] for event in upstream.received] == ["session.update"]


async def test_p4_turn_detection_none_from_the_proxy_config(proxy_factory, fake):
    proxy = await proxy_factory(turn_detection="none", transcription_model="gpt-4o-transcribe")
    with trio.fail_after(5):
        async with proxy.session(fake) as (client, upstream):
            session = (await upstream.next("session.update"))["session"]
            assert session["audio"]["input"]["turn_detection"] is None
            assert session["audio"]["input"]["transcription"]["model"] == "gpt-4o-transcribe"


async def test_p3_1_second_settings_answered_at_once_with_nothing_upstream(proxy, fake):
    changed = settings({"think": {"prompt": "A different prompt."}})
    with trio.fail_after(5):
        async with proxy.session(fake) as (client, upstream):
            await client.settings(changed)
            await client.next("SettingsApplied")
            # A turn after it proves the proxy went on; still one session.update.
            await client.send({"type": "InjectUserMessage", "content": "hello"})
            await client.next("AgentAudioDone")
            kinds = [event["type"] for event in upstream.received]
            assert kinds.count("session.update") == 1
            assert upstream.session["instructions"] == DEFAULT_SETTINGS["agent"]["think"]["prompt"]


def test_p4_deepgram_only_settings_fields_are_tolerated_and_not_sent():
    """Fields a Deepgram client sends that have no Realtime meaning: accepted, nothing upstream for them."""
    message = settings(
        {
            **AGENT,
            "listen": {"provider": {"type": "deepgram", "version": "v2", "model": "flux-general-en", "keyterms": ["x"]}},
            "think": {**AGENT["think"], "context_length": "max", "endpoint": {"url": "https://llm.example"}},
        }
    )
    message.update({"tags": ["support"], "experimental": True, "flags": {"history": True}, "mip_opt_out": True})
    session, client = translate(message)
    text = json.dumps(session)
    for absent in ("tags", "experimental", "flags", "mip_opt_out", "keyterms", "context_length", "llm.example", "flux"):
        assert absent not in text
    assert session["instructions"] == AGENT["think"]["prompt"]
    assert client == []
