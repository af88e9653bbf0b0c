"""Issue 14 through sockets: live captions, duplicate function-call answers, one VOICE_IGNORED.

Every frame a client gets here is validated by the fixtures' oracle: agent V1
messages against deepgram-sdk's agent models, `Results` against its listen
`ListenV1Results` (P1.4, compatibility extras of P6).
"""

from __future__ import annotations

import copy
import logging

import pytest
import trio
from deepgram.agent.v1 import types as agent_types

from proxy.config import ConfigError, load_config
from proxy.testing import DEFAULT_SETTINGS

from .test_deepgram_sdk import assert_sdk_types, run_in_thread, sdk_client, sdk_settings


async def spoken_turn(upstream, item_id: str, deltas: list[str], transcript: str) -> None:
    """What the GA service sends for one spoken turn with streaming transcription."""
    await upstream.send({"type": "input_audio_buffer.speech_started", "audio_start_ms": 320, "item_id": item_id})
    await upstream.send({"type": "input_audio_buffer.speech_stopped", "audio_end_ms": 1800, "item_id": item_id})
    await upstream.send({"type": "input_audio_buffer.committed", "item_id": item_id, "previous_item_id": None})
    await upstream.send({"type": "conversation.item.added",
                         "item": {"id": item_id, "type": "message", "role": "user", "content": []}})
    for delta in deltas:
        await upstream.send({"type": "conversation.item.input_audio_transcription.delta", "item_id": item_id,
                             "content_index": 0, "delta": delta})
    await upstream.send({"type": "conversation.item.input_audio_transcription.completed", "item_id": item_id,
                         "content_index": 0, "transcript": transcript, "usage": {"type": "duration", "seconds": 1.5}})


def transcript_of(results: dict) -> str:
    return results["channel"]["alternatives"][0]["transcript"]


async def test_deltas_then_completed_give_interim_then_final_results_after_the_user_text(proxy, fake):
    fake.responder = None
    with trio.fail_after(5):
        async with proxy.session(fake) as (client, upstream):
            mark = len(client.received)
            await spoken_turn(upstream, "item_u1", ["I need", " running", " shoes"], "I need running shoes.")
            await client.next("UtteranceEnd")
            while not any(m.get("is_final") for m in client.messages("Results")):
                await client.next("Results")
    turn = [m for m in client.received[mark:] if isinstance(m, dict)]
    assert [m["type"] for m in turn] == ["UserStartedSpeaking", "UtteranceEnd", "Results", "Results", "Results",
                                         "ConversationText", "Results"]
    results = [m for m in turn if m["type"] == "Results"]
    assert [transcript_of(m) for m in results] == ["I need", "I need running", "I need running shoes",
                                                  "I need running shoes."]
    assert [(m["is_final"], m["speech_final"]) for m in results] == [(False, False)] * 3 + [(True, True)]
    assert turn[5] == {"type": "ConversationText", "role": "user", "content": "I need running shoes."}
    final = results[-1]
    assert (final["start"], final["duration"]) == (0.32, 1.48)  # server VAD's audio_start_ms / audio_end_ms
    assert final["metadata"]["request_id"] == client.messages("Welcome")[0]["request_id"]


async def test_captions_off_sends_only_the_agent_messages(proxy_factory, fake):
    proxy = await proxy_factory(captions=False)
    fake.responder = None
    with trio.fail_after(5):
        async with proxy.session(fake) as (client, upstream):
            await spoken_turn(upstream, "item_u1", ["Hello"], "Hello.")
            await client.next("ConversationText")
            await client.send({"type": "InjectUserMessage", "content": "sync"})  # a round trip after the turn
            await client.next("ConversationText")
    assert client.messages("Results") == []


@pytest.mark.parametrize(
    "environ, argv, value",
    [({}, [], True), ({"OPENAI_PROXY_CAPTIONS": "0"}, [], False), ({"OPENAI_PROXY_CAPTIONS": "off"}, ["--captions", "1"], True)],
)
def test_captions_setting_p8_names(tmp_path, environ, argv, value):
    assert load_config(argv, {"OPENAI_API_KEY": "sk-x", **environ}, cwd=str(tmp_path)).captions is value


def test_a_bad_captions_value_names_the_variable(tmp_path):
    with pytest.raises(ConfigError, match="OPENAI_PROXY_CAPTIONS"):
        load_config([], {"OPENAI_API_KEY": "sk-x", "OPENAI_PROXY_CAPTIONS": "maybe"}, cwd=str(tmp_path))


async def test_a_second_function_call_response_for_an_answered_call_sends_nothing_upstream(proxy, fake, caplog):
    """P5.2: dg_react_agent answers a call, then sends 'Handler completed without sending a response'."""
    caplog.set_level(logging.INFO, logger="proxy")
    fake.responder = None
    with trio.fail_after(5):
        async with proxy.session(fake) as (client, upstream):
            await client.send({"type": "InjectUserMessage", "content": "weather?"})
            create = await upstream.next("response.create")
            [call_id] = await upstream.play_function_calls([("get_weather", "{}")], create)
            await client.next("FunctionCallRequest")
            answer = {"type": "FunctionCallResponse", "id": call_id, "name": "get_weather", "content": "sunny"}
            await client.send(answer)
            await upstream.next("response.create")  # the follow-up (P5.2)
            await client.send({**answer, "content": "Handler completed without sending a response"})
            await client.send({"type": "InjectUserMessage", "content": "sync"})  # handled after the duplicate
            while (await upstream.next("conversation.item.create"))["item"]["type"] != "message":
                pass
    outputs = [e for e in upstream.of_type("conversation.item.create") if e["item"]["type"] == "function_call_output"]
    assert [(o["item"]["call_id"], o["item"]["output"]) for o in outputs] == [(call_id, "sunny")]
    dropped = [r for r in caplog.records if "answered call" in r.getMessage()]
    assert len(dropped) == 1 and dropped[0].call_id == call_id


async def test_voice_ignored_at_most_once_per_connection(proxy, fake):
    settings = copy.deepcopy(DEFAULT_SETTINGS)
    settings["agent"]["speak"] = {"provider": {"type": "deepgram", "model": "aura-asteria-en"}}
    with trio.fail_after(5):
        async with proxy.session(fake, settings) as (client, upstream):
            await client.send({"type": "UpdateSpeak", "speak": {"provider": {"type": "deepgram", "model": "aura-asteria-en"}}})
            await client.next("SpeakUpdated")
            await client.send(settings)  # clients resend Settings (P3.1)
            await client.next("SettingsApplied")
            await client.send({"type": "UpdateSpeak", "speak": {"provider": {"type": "open_ai", "voice": "aura-2"}}})
            await client.next("SpeakUpdated")
    assert [w["code"] for w in client.messages("Warning")] == ["VOICE_IGNORED"]
    assert "voice" not in upstream.of_type("session.update")[0]["session"]["audio"]["output"]


async def test_deepgram_sdk_agent_client_tolerates_the_captions(proxy, fake):
    """The SDK's own agent client, captions on: it hands `Results` back as a plain dict and goes on."""
    fake.responder = None

    def conversation() -> list:
        received: list = []
        with sdk_client(proxy.server.port).agent.v1.connect() as socket:
            socket.send_settings(sdk_settings())
            while True:
                message = socket.recv()
                received.append(message)
                if isinstance(message, agent_types.AgentV1ConversationText):
                    break
            received.append(socket.recv())  # the final caption, after the user's ConversationText
            socket.send_inject_user_message(agent_types.AgentV1InjectUserMessage(content="And?"))
            while not isinstance(received[-1], agent_types.AgentV1ConversationText) or received[-1].content != "And?":
                received.append(socket.recv())
        return received

    with trio.fail_after(10):
        async with trio.open_nursery() as nursery:
            result: list = []

            async def client_side() -> None:
                result.extend(await run_in_thread(conversation))

            nursery.start_soon(client_side)
            upstream = await fake.next_connection()
            await upstream.next("session.update")
            await spoken_turn(upstream, "item_u1", ["Hi"], "Hi there.")
    # The listen-shaped extras (P6) come back as plain dicts; everything else is the SDK's own agent type.
    extras = [m for m in result if isinstance(m, dict)]
    assert [m["type"] for m in extras] == ["UtteranceEnd", "Results", "Results"]
    assert [m["is_final"] for m in extras[1:]] == [False, True]
    assert_sdk_types([m for m in result if not isinstance(m, dict)])
    texts = [m.content for m in result if isinstance(m, agent_types.AgentV1ConversationText)]
    assert texts == ["Hi there.", "And?"]
