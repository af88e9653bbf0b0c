"""Integration: each conversation rule of issue 3 through real sockets and the fake upstream."""

from __future__ import annotations

import copy

import trio

from proxy.testing import DEFAULT_SETTINGS

CHUNK = b"\x20\x00" * 480




async def test_p3_4_function_call_history_items(proxy, fake):
    settings = copy.deepcopy(DEFAULT_SETTINGS)
    settings["agent"]["context"] = {"messages": [
        {"type": "History", "role": "user", "content": "Order status?"},
        {"type": "History", "function_calls": [{"id": "call_9", "name": "order_status", "arguments": "{}",
                                                "response": "shipped", "client_side": True}]},
        {"type": "History", "role": "assistant", "content": "It has shipped."}]}
    with trio.fail_after(5):
        async with proxy.connect() as client:
            await client.settings(settings)
            await client.next("SettingsApplied")
            upstream = await fake.next_connection()
            items = [(await upstream.next("conversation.item.create"))["item"] for _ in range(4)]
            assert [i["type"] for i in items] == ["message", "function_call", "function_call_output", "message"]
            assert items[2] == {"type": "function_call_output", "call_id": "call_9", "output": "shipped"}
            assert not upstream.of_type("response.create")


async def test_p5_2_deadline_follow_up_when_upstream_never_says_done(proxy_factory, fake):
    fake.responder = None
    proxy = await proxy_factory(function_call_deadline_s=0.2)
    with trio.fail_after(5):
        async with proxy.session(fake) as (client, upstream):
            response_id = await upstream.begin_response()
            await upstream.send({"type": "response.function_call_arguments.done", "response_id": response_id,
                                 "item_id": "item_c", "output_index": 0, "call_id": "call_1",
                                 "name": "lookup", "arguments": "{}"})
            request = await client.next("FunctionCallRequest")
            await client.send({"type": "FunctionCallResponse", "id": request["functions"][0]["id"],
                               "name": "lookup", "content": "42"})
            # No response.done ever comes: the follow-up goes anyway once the deadline passes.
            follow_up = await upstream.next("response.create")
            assert follow_up["type"] == "response.create"
            assert len(upstream.of_type("response.create")) == 1


async def test_p5_3_queue_and_interrupt(proxy, fake):
    fake.responder = None
    with trio.fail_after(5):
        async with proxy.session(fake) as (client, upstream):
            first = await upstream.begin_response()
            await client.send({"type": "InjectAgentMessage", "message": "Queued line.", "behavior": "queue"})
            await client.send({"type": "KeepAlive"})
            await upstream.end_response(first)
            queued = await upstream.next("response.create")
            assert "Queued line." in queued["response"]["instructions"]
            second = await upstream.begin_response(queued)
            await client.next("AgentThinking")
            await client.next("AgentThinking")
            await client.send({"type": "InjectAgentMessage", "message": "Breaking news.", "behavior": "interrupt"})
            cancel = await upstream.next("response.cancel")
            assert cancel["response_id"] == second
            assert len(upstream.of_type("response.create")) == 1  # waits for the cancelled one to end
            await upstream.end_response(second, status="cancelled")
            interrupt = await upstream.next("response.create")
            assert "Breaking news." in interrupt["response"]["instructions"]


async def test_p5_5_update_speak_and_rejection(proxy, fake):
    fake.responder = None
    with trio.fail_after(5):
        async with proxy.session(fake) as (client, upstream):
            await client.send({"type": "UpdateSpeak", "speak": {"provider": {"type": "open_ai", "voice": "sage"}}})
            await client.next("SpeakUpdated")
            assert upstream.session["audio"]["output"]["voice"] == "sage"
            upstream.reject_updates = True
            await client.send({"type": "UpdateSpeak", "speak": {"provider": {"type": "open_ai", "voice": "ash"}}})
            error = await client.next("Error")
            assert error["code"] == "invalid_value"
            assert len(client.messages("SpeakUpdated")) == 1
            # An unusable voice: one Warning, nothing upstream, still acknowledged.
            updates = len(upstream.of_type("session.update"))
            await client.send({"type": "UpdateSpeak", "speak": {"provider": {"type": "deepgram", "model": "aura-2-thalia-en"}}})
            warning = await client.next("Warning")
            assert warning["code"] == "VOICE_IGNORED"
            await client.next("SpeakUpdated")
            assert len(upstream.of_type("session.update")) == updates


async def test_p5_6_update_think_and_p5_7_timeout(proxy_factory, fake):
    fake.responder = None
    proxy = await proxy_factory(update_timeout_s=0.2)
    with trio.fail_after(5):
        async with proxy.session(fake) as (client, upstream):
            await client.send({"type": "UpdateThink", "think": {"provider": {"type": "open_ai"}, "prompt": "New role.",
                                                                 "functions": [{"name": "ping", "client_side": True}]}})
            await client.next("ThinkUpdated")
            assert upstream.session["instructions"] == "New role."
            assert upstream.session["tools"] == [{"type": "function", "name": "ping",
                                                  "parameters": {"type": "object", "properties": {}}}]
            upstream.ignore_updates = True
            await client.send({"type": "UpdatePrompt", "prompt": "Lost."})
            await client.send({"type": "UpdatePrompt", "prompt": "Also lost."})
            first = await client.next("Error")
            second = await client.next("Error")
            assert first["code"] == second["code"] == "UPDATE_TIMEOUT"
            assert len(upstream.of_type("session.update")) == 4  # the next proceeded after the first timed out


async def test_p6_1_text_and_transcript_give_one_conversation_text_and_failed_response_errors(proxy, fake):
    fake.responder = None
    with trio.fail_after(5):
        async with proxy.session(fake) as (client, upstream):
            response_id = await upstream.begin_response()
            part = {"response_id": response_id, "item_id": "item_t", "output_index": 0, "content_index": 0}
            await upstream.send({"type": "response.output_audio.done", **part})
            await upstream.send({"type": "response.output_audio_transcript.done", **part, "transcript": "Both."})
            await upstream.send({"type": "response.output_text.done", **part, "text": "Both."})
            await upstream.end_response(response_id, status="failed",
                                        error={"type": "server_error", "code": "server_error", "message": "boom"})
            error = await client.next("Error")
            assert error == {"type": "Error", "code": "server_error", "description": "boom"}
            assert len(client.messages("ConversationText")) == 1
            assert len(client.messages("AgentAudioDone")) == 1


async def test_p6_4_latency_figures_are_measured(proxy, fake):
    fake.responder = None
    with trio.fail_after(5):
        async with proxy.session(fake) as (client, upstream):
            await client.send({"type": "InjectUserMessage", "content": "Hi"})
            create = await upstream.next("response.create")
            await trio.sleep(0.05)
            response_id = await upstream.begin_response(create)
            await trio.sleep(0.05)
            await upstream.send({"type": "response.output_audio.delta", "response_id": response_id, "item_id": "i",
                                 "output_index": 0, "content_index": 0, "delta": "AAAA"})
            started = await client.next("AgentStartedSpeaking")
            assert started["ttt_latency"] >= 0.04 and started["tts_latency"] >= 0.04
            assert abs(started["total_latency"] - started["ttt_latency"] - started["tts_latency"]) < 0.001
