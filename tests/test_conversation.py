"""Integration: a whole scripted voice-commerce conversation through real sockets (issue 3).

Greeting (spoken), a spoken turn answered with two parallel function calls,
the follow-up answer interrupted by the user (barge-in), an UpdatePrompt
between turns, and an InjectAgentMessage refused while the agent speaks and
accepted afterwards. Schema oracles are on (conftest): every message the
client receives and every event sent upstream validates.
"""

from __future__ import annotations

import base64
import copy

import trio

from proxy.testing import DEFAULT_SETTINGS

CHUNK = b"\x10\x00" * 480  # 20 ms at 24 kHz


def shop_settings() -> dict:
    settings = copy.deepcopy(DEFAULT_SETTINGS)
    settings["agent"]["greeting"] = "Welcome to the shoe shop!"
    settings["agent"]["think"]["functions"] = [
        {"name": "find_shoes", "description": "Search the catalogue",
         "parameters": {"type": "object", "properties": {"kind": {"type": "string"}}}},
        {"name": "check_stock", "description": "Stock for a size",
         "parameters": {"type": "object", "properties": {"size": {"type": "number"}}}},
    ]
    return settings


def since(client, start: int) -> list[str]:
    return client.types()[start:]


async def stream_deltas(upstream, response_id: str, item_id: str, count: int) -> None:
    for _ in range(count):
        await upstream.send({"type": "response.output_audio.delta", "response_id": response_id, "item_id": item_id,
                             "output_index": 0, "content_index": 0, "delta": base64.b64encode(CHUNK).decode()})


async def test_scripted_conversation(proxy_factory, fake):
    fake.responder = None
    proxy = await proxy_factory(greeting="speak")
    with trio.fail_after(15):
        async with proxy.connect() as client:
            await client.next("Welcome")
            await client.settings(shop_settings())
            upstream = await fake.next_connection()
            update = await upstream.next("session.update")
            assert [t["name"] for t in update["session"]["tools"]] == ["find_shoes", "check_stock"]

            # --- greeting, spoken out of band (P3.5)
            await client.next("SettingsApplied")
            greeting = await client.next("ConversationText")
            assert greeting == {"type": "ConversationText", "role": "assistant", "content": "Welcome to the shoe shop!"}
            create = await upstream.next("response.create")
            assert create["response"]["conversation"] == "none"
            mark = len(client.received)
            await upstream.play_response(transcript="Welcome to the shoe shop!", audio=CHUNK * 3, create=create)
            await client.next("LatencyReport")  # after each agent turn
            assert since(client, mark) == ["AgentThinking", "AgentStartedSpeaking", "<audio>", "<audio>", "<audio>",
                                           "AgentAudioDone", "LatencyReport"]

            # --- a spoken turn answered with two parallel function calls (P5.2)
            for _ in range(5):
                await client.send_audio(CHUNK)
            await upstream.wait_audio(5 * len(CHUNK))
            mark = len(client.received)
            await upstream.user_turn("I need running shoes in size 42")
            call_ids = await upstream.play_function_calls(
                [("find_shoes", '{"kind":"running"}'), ("check_stock", '{"size":42}')])
            await client.next("LatencyReport")  # after each agent turn
            assert since(client, mark) == ["UserStartedSpeaking", "UtteranceEnd", "ConversationText", "Results",
                                           "AgentThinking", "FunctionCallRequest", "FunctionCallRequest",
                                           "AgentAudioDone", "LatencyReport"]
            requests = [await client.next("FunctionCallRequest") for _ in range(2)]
            assert [r["functions"][0]["id"] for r in requests] == call_ids
            await client.send({"type": "FunctionCallResponse", "id": call_ids[1], "name": "check_stock", "content": "3 pairs"})
            await client.send({"type": "FunctionCallResponse", "id": call_ids[0], "name": "find_shoes", "content": "Zoom, Glide"})
            follow_up = await upstream.next("response.create")
            outputs = upstream.of_type("conversation.item.create")[-2:]
            assert [o["item"]["call_id"] for o in outputs] == [call_ids[1], call_ids[0]]

            # --- the answer, interrupted by the user mid-speech (P7)
            mark, heard = len(client.received), len(client.audio)
            response_id = await upstream.begin_response(follow_up)
            await stream_deltas(upstream, response_id, "item_answer", 10)
            await client.wait_audio(heard + 10 * len(CHUNK))
            await upstream.send({"type": "input_audio_buffer.speech_started", "audio_start_ms": 9000, "item_id": "item_u2"})
            truncate = await upstream.next("conversation.item.truncate")
            # Only this one: the greeting was out of band, so never truncated.
            assert len(upstream.of_type("conversation.item.truncate")) == 1
            assert truncate["item_id"] == "item_answer" and 0 <= truncate["audio_end_ms"] <= 200
            await stream_deltas(upstream, response_id, "item_answer", 5)  # must be dropped
            await upstream.end_response(response_id, status="cancelled")
            await client.next("LatencyReport")  # after each agent turn
            assert since(client, mark) == (["AgentThinking", "AgentStartedSpeaking"] + ["<audio>"] * 10
                                           + ["UserStartedSpeaking", "AgentAudioDone", "LatencyReport"])

            # --- UpdatePrompt between turns (P5.4)
            await upstream.send({"type": "input_audio_buffer.speech_stopped", "audio_end_ms": 9800, "item_id": "item_u2"})
            await client.send({"type": "UpdatePrompt", "prompt": "Mention the sale."})
            prompt_update = await upstream.next("session.update")
            assert prompt_update["session"]["instructions"] == "You are a helpful agent.\nMention the sale."
            await client.next("PromptUpdated")

            # --- InjectAgentMessage refused while the agent speaks, accepted afterwards (P5.3)
            response_id = await upstream.begin_response()
            await stream_deltas(upstream, response_id, "item_speaking", 2)
            await client.send({"type": "InjectAgentMessage", "message": "Our sale ends today."})
            refused = await client.next("InjectionRefused")
            assert refused == {"type": "InjectionRefused", "message": "Our sale ends today."}
            await upstream.end_response(response_id)
            await client.next("LatencyReport")  # after each agent turn
            await client.send({"type": "InjectAgentMessage", "message": "Our sale ends today."})
            inject = await upstream.next("response.create")
            assert "Our sale ends today." in inject["response"]["instructions"]
            mark = len(client.received)
            await upstream.play_response(transcript="Our sale ends today.", audio=CHUNK * 2, create=inject)
            await client.next("LatencyReport")  # after each agent turn
            assert since(client, mark) == ["AgentThinking", "AgentStartedSpeaking", "<audio>", "<audio>",
                                           "ConversationText", "AgentAudioDone", "LatencyReport"]
            assert client.messages("ConversationText")[-1]["content"] == "Our sale ends today."
            # Never two responses at once, and no stray response.create.
            assert len(upstream.of_type("response.create")) == 3
            assert not client.messages("Error")
