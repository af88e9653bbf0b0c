"""Unit tests of the pure Session for the conversation rules (issue 3).

Each test feeds the event order the real service is known to produce and
checks what the proxy sends each way; rule numbers are PROTOCOL.md's.
"""

from __future__ import annotations

import base64
import copy
import json

import pytest

from proxy.testing import DEFAULT_SETTINGS

from .session_harness import Harness

AUDIO_20MS = b"\x00\x01" * 480  # 20 ms of PCM16 at 24 kHz


def settings_with(**agent) -> dict:
    settings = copy.deepcopy(DEFAULT_SETTINGS)
    settings["agent"].update(agent)
    return settings


# ---------------------------------------------------------------- P3.4, P3.5


def test_p3_4_function_call_history_becomes_call_and_output_items_in_order():
    h = Harness()
    h.ready(settings_with(context={"messages": [
        {"type": "History", "role": "user", "content": "Weather in Paris?"},
        {"type": "History", "function_calls": [
            {"id": "call_1", "name": "get_weather", "arguments": '{"city":"Paris"}', "response": "sunny",
             "client_side": True}]},
        {"type": "History", "role": "assistant", "content": "It is sunny."},
    ]}))
    items = [e["item"] for e in h.upstream if e["type"] == "conversation.item.create"]
    assert [(i["type"], i.get("role")) for i in items] == [
        ("message", "user"), ("function_call", None), ("function_call_output", None), ("message", "assistant")]
    assert items[1] == {"type": "function_call", "call_id": "call_1", "name": "get_weather",
                        "arguments": '{"city":"Paris"}'}
    assert items[2] == {"type": "function_call_output", "call_id": "call_1", "output": "sunny"}
    assert items[3]["content"] == [{"type": "output_text", "text": "It is sunny."}]
    assert "response.create" not in h.upstream_types()  # P3.4: no response for context


def test_p3_3_context_before_greeting_and_held_messages_after():
    h = Harness()
    h.send(settings_with(greeting="Hi, I am Ava.", context={"messages": [
        {"type": "History", "role": "user", "content": "earlier"}]}))
    h.send({"type": "InjectUserMessage", "content": "held until ready"})
    assert h.upstream_types() == ["session.update"]  # P3.6: held
    h.up("session.updated", session={})
    creates = [e["item"] for e in h.upstream if e["type"] == "conversation.item.create"]
    texts = [(c["role"], c["content"][0]["text"]) for c in creates]
    assert texts == [("user", "earlier"), ("assistant", "Hi, I am Ava."), ("user", "held until ready")]
    assert h.client_types()[1:] == ["SettingsApplied", "ConversationText", "ConversationText"]
    assert h.of_type("ConversationText")[0] == {"type": "ConversationText", "role": "assistant",
                                                 "content": "Hi, I am Ava."}


def test_p3_5_spoken_greeting_is_out_of_band_and_not_texted_twice():
    h = Harness(greeting="speak")
    h.ready(settings_with(greeting="Welcome to the shop."))
    create = h.last_upstream("response.create")
    assert create["response"]["conversation"] == "none"
    assert "Welcome to the shop." in create["response"]["instructions"]
    h.clear()
    h.now = 1.0
    h.created("resp_g", create["response"]["metadata"])
    h.now = 1.2
    h.delta("resp_g", AUDIO_20MS)
    h.up("response.output_audio.done", response_id="resp_g", item_id="item_a", output_index=0, content_index=0)
    h.up("response.output_audio_transcript.done", response_id="resp_g", item_id="item_a", output_index=0,
         content_index=0, transcript="Welcome to the shop.")
    h.done("resp_g")
    assert h.client_types() == ["AgentThinking", "AgentStartedSpeaking", "<audio>", "AgentAudioDone", "LatencyReport"]
    started = h.of_type("AgentStartedSpeaking")[0]
    # P6.4: the turn ended when the proxy sent response.create (t=0).
    assert started["ttt_latency"] == pytest.approx(1.0)
    assert started["tts_latency"] == pytest.approx(0.2)
    assert started["total_latency"] == pytest.approx(1.2)


# ---------------------------------------------------------------------- P5.1


def test_p5_1_response_create_waits_for_ack_and_for_the_active_response():
    h = Harness()
    h.ready()
    h.created("resp_vad")  # a voice turn is being answered
    h.send({"type": "InjectUserMessage", "content": "and also"})
    item = h.last_upstream("conversation.item.create")["item"]
    assert h.of_type("ConversationText")[-1] == {"type": "ConversationText", "role": "user", "content": "and also"}
    assert "response.create" not in h.upstream_types()
    h.up("conversation.item.added", item={"id": item["id"], "type": "message"})
    h.up("conversation.item.done", item={"id": item["id"], "type": "message"})
    assert "response.create" not in h.upstream_types()  # still one active
    h.done("resp_vad")
    assert h.upstream_types().count("response.create") == 1  # exactly once


def test_p5_1_lost_race_with_server_vad_is_retried_after_response_done():
    h = Harness()
    h.ready()
    h.send({"type": "InjectUserMessage", "content": "hello"})
    item_id = h.last_upstream("conversation.item.create")["item"]["id"]
    h.up("conversation.item.added", item={"id": item_id})
    create = h.last_upstream("response.create")
    h.created("resp_vad", metadata=None)  # the upstream's own response won the race...
    h.up("error", error={"type": "invalid_request_error", "code": "conversation_already_has_active_response",
                         "message": "busy", "event_id": create["event_id"]})
    # ...the created one was taken as ours (no metadata); the error says otherwise.
    assert h.of_type("Warning")[-1]["code"] == "conversation_already_has_active_response"
    h.done("resp_vad")
    assert h.upstream_types().count("response.create") == 2


# ---------------------------------------------------------------------- P5.2


@pytest.mark.parametrize("answers_first", [False, True], ids=["done-then-answers", "answers-then-done"])
def test_p5_2_follow_up_once_after_done_and_every_parallel_call_answered(answers_first):
    h = Harness()
    h.ready()
    h.created("resp_1")
    h.call("resp_1", "call_a", "get_weather", '{"city":"Paris"}')
    h.call("resp_1", "call_b", "get_time", '{"tz":"CET"}')
    requests = h.of_type("FunctionCallRequest")
    assert [r["functions"][0]["id"] for r in requests] == ["call_a", "call_b"]
    assert all(r["functions"][0]["client_side"] is True for r in requests)
    if not answers_first:
        h.done("resp_1")
    h.send({"type": "FunctionCallResponse", "id": "call_a", "name": "get_weather", "content": "sunny"})
    assert "response.create" not in h.upstream_types()  # call_b still open
    h.send({"type": "FunctionCallResponse", "id": "call_b", "name": "get_time", "content": "noon"})
    if answers_first:
        assert "response.create" not in h.upstream_types()  # the asking response is not done
        h.up("conversation.item.done", item={"id": "item_x", "type": "function_call_output"})
        assert "response.create" not in h.upstream_types()
        h.done("resp_1")
    outputs = [e["item"] for e in h.upstream if e["type"] == "conversation.item.create"]
    assert outputs == [{"type": "function_call_output", "call_id": "call_a", "output": "sunny"},
                       {"type": "function_call_output", "call_id": "call_b", "output": "noon"}]
    assert h.upstream_types().count("response.create") == 1
    assert h.client_types()[-4:] == ["FunctionCallRequest", "FunctionCallRequest", "AgentAudioDone", "LatencyReport"]


def test_p6_2_function_calling_turn_order():
    h = Harness()
    h.ready()
    h.clear()
    h.created("resp_1")
    h.call("resp_1", "call_a")
    h.done("resp_1")
    assert h.client_types() == ["AgentThinking", "FunctionCallRequest", "AgentAudioDone", "LatencyReport"]


def test_p5_2_deadline_sends_follow_up_when_response_done_never_comes(caplog):
    h = Harness(function_call_deadline_s=20)
    h.ready()
    h.created("resp_1")
    h.call("resp_1", "call_a")
    h.now = 5.0
    h.send({"type": "FunctionCallResponse", "id": "call_a", "name": "get_weather", "content": "sunny"})
    assert h.timers["function_call"] == pytest.approx(25.0)  # counted from the last answer
    assert "response.create" not in h.upstream_types()
    with caplog.at_level("ERROR"):
        h.fire("function_call")
    assert h.upstream_types().count("response.create") == 1
    assert any("response.done" in r.getMessage() for r in caplog.records if r.levelname == "ERROR")


def test_p5_2_client_never_answers_nothing_is_sent():
    h = Harness()
    h.ready()
    h.created("resp_1")
    h.call("resp_1", "call_a")
    h.done("resp_1")
    assert "function_call" not in h.timers
    assert "response.create" not in h.upstream_types()


# ---------------------------------------------------------------------- P5.3


def test_p5_3_default_refused_while_agent_speaks_and_accepted_after():
    h = Harness()
    h.ready()
    h.created("resp_1")
    h.send({"type": "InjectAgentMessage", "message": "One moment."})
    assert h.of_type("InjectionRefused") == [{"type": "InjectionRefused", "message": "One moment."}]
    assert "response.create" not in h.upstream_types()
    h.done("resp_1")
    h.send({"type": "InjectAgentMessage", "message": "One moment."})
    create = h.last_upstream("response.create")
    assert "One moment." in create["response"]["instructions"]
    assert create["response"].get("conversation") is None  # in band: part of the history


def test_p5_3_default_refused_while_user_speaks():
    h = Harness()
    h.ready()
    h.up("input_audio_buffer.speech_started", audio_start_ms=10, item_id="item_u")
    h.send({"type": "InjectAgentMessage", "message": "Hello?"})
    assert len(h.of_type("InjectionRefused")) == 1
    h.up("input_audio_buffer.speech_stopped", audio_end_ms=900, item_id="item_u")
    h.send({"type": "InjectAgentMessage", "message": "Hello?"})
    assert h.upstream_types().count("response.create") == 1


def test_p5_3_queue_runs_after_the_active_response():
    h = Harness()
    h.ready()
    h.created("resp_1")
    h.send({"type": "InjectAgentMessage", "message": "Anything else?", "behavior": "queue"})
    assert "response.create" not in h.upstream_types()
    assert not h.of_type("InjectionRefused")
    h.done("resp_1")
    assert "Anything else?" in h.last_upstream("response.create")["response"]["instructions"]


def test_p5_3_interrupt_cancels_then_speaks_after_response_done():
    h = Harness()
    h.ready()
    h.created("resp_1")
    h.delta("resp_1", AUDIO_20MS)
    h.send({"type": "InjectAgentMessage", "message": "Stop, urgent!", "behavior": "interrupt"})
    assert h.upstream_types()[-1] == "response.cancel"
    assert "response.create" not in h.upstream_types()  # never two at once
    h.done("resp_1", status="cancelled", type="cancelled", reason="client_cancelled")
    assert "Stop, urgent!" in h.last_upstream("response.create")["response"]["instructions"]


# ----------------------------------------------------------------- P5.4-P5.7


def test_p5_4_update_prompt_appends_and_acks_after_session_updated():
    h = Harness()
    h.ready()
    h.send({"type": "UpdatePrompt", "prompt": "Be brief."})
    update = h.last_upstream("session.update")
    assert update["session"]["instructions"] == "You are a helpful agent.\nBe brief."
    assert not h.of_type("PromptUpdated")
    h.up("session.updated", session={})
    assert len(h.of_type("PromptUpdated")) == 1
    h.send({"type": "UpdatePrompt", "prompt": "Speak French."})
    assert h.last_upstream("session.update")["session"]["instructions"] == (
        "You are a helpful agent.\nBe brief.\nSpeak French.")


def test_p5_7_updates_deferred_while_response_active_and_applied_in_order():
    h = Harness()
    h.ready()
    h.created("resp_1")
    h.send({"type": "UpdatePrompt", "prompt": "A."})
    h.send({"type": "UpdateSpeak", "speak": {"provider": {"type": "open_ai", "voice": "coral"}}})
    assert h.upstream_types().count("session.update") == 1  # only the Settings one
    h.done("resp_1")
    assert h.upstream_types().count("session.update") == 2  # one at a time
    h.up("session.updated", session={})
    assert h.upstream_types().count("session.update") == 3
    assert h.last_upstream("session.update")["session"]["audio"]["output"]["voice"] == "coral"
    h.up("session.updated", session={})
    assert [t for t in h.client_types() if t.endswith("Updated")] == ["PromptUpdated", "SpeakUpdated"]


def test_p5_7_rejected_update_is_forgotten_and_next_proceeds():
    h = Harness()
    h.ready()
    h.send({"type": "UpdatePrompt", "prompt": "Rejected part."})
    h.send({"type": "UpdatePrompt", "prompt": "Kept part."})
    first = h.last_upstream("session.update")
    h.up("error", error={"type": "invalid_request_error", "code": "invalid_value", "message": "no",
                         "event_id": first["event_id"]})
    assert h.of_type("Error")[-1]["code"] == "invalid_value"
    assert not h.of_type("PromptUpdated")
    second = h.last_upstream("session.update")
    assert second["session"]["instructions"] == "You are a helpful agent.\nKept part."
    h.up("session.updated", session={})
    assert len(h.of_type("PromptUpdated")) == 1


def test_p5_5_rejected_voice_keeps_the_old_one():
    h = Harness()
    h.ready()
    h.send({"type": "UpdateSpeak", "speak": {"provider": {"type": "open_ai", "voice": "verse"}}})
    update = h.last_upstream("session.update")
    h.up("error", error={"type": "invalid_request_error", "code": "cannot_update_voice",
                         "message": "voice cannot change after audio", "event_id": update["event_id"]})
    assert h.of_type("Error")[-1] == {"type": "Error", "code": "cannot_update_voice",
                                      "description": "speak update rejected: voice cannot change after audio"}
    assert h.session.applied.voice == "alloy"
    assert not h.of_type("SpeakUpdated")


def test_p5_7_update_timeout_reports_and_next_proceeds():
    h = Harness(update_timeout_s=10)
    h.ready()
    h.send({"type": "UpdatePrompt", "prompt": "A."})
    h.send({"type": "UpdatePrompt", "prompt": "B."})
    assert h.upstream_types().count("session.update") == 2
    h.fire("update")
    assert h.of_type("Error")[-1]["code"] == "UPDATE_TIMEOUT"
    assert h.upstream_types().count("session.update") == 3
    assert h.last_upstream("session.update")["session"]["instructions"] == "You are a helpful agent.\nB."


def test_p5_6_update_think_replaces_prompt_and_functions():
    h = Harness(function_hosts=("x",))  # find_shoe has an endpoint: a server-side function
    h.ready()
    h.send({"type": "UpdateThink", "think": {
        "provider": {"type": "open_ai", "model": "gpt-4o-mini"}, "prompt": "You sell shoes.",
        "functions": [{"name": "find_shoe", "description": "Find a shoe", "endpoint": {"url": "https://x"},
                       "parameters": {"type": "object", "properties": {"size": {"type": "number"}}}}]}})
    session = h.last_upstream("session.update")["session"]
    assert session["instructions"] == "You sell shoes."
    assert session["tools"] == [{"type": "function", "name": "find_shoe", "description": "Find a shoe",
                                 "parameters": {"type": "object", "properties": {"size": {"type": "number"}}}}]
    h.up("session.updated", session={})
    assert len(h.of_type("ThinkUpdated")) == 1
    h.send({"type": "UpdatePrompt", "prompt": "Be kind."})
    assert h.last_upstream("session.update")["session"]["instructions"] == "You sell shoes.\nBe kind."


# ------------------------------------------------------------------ P6.1, P6


def test_p6_1_one_conversation_text_when_both_text_and_transcript_arrive():
    h = Harness()
    h.ready()
    h.clear()
    h.created("resp_1")
    part = dict(response_id="resp_1", item_id="item_a", output_index=0, content_index=0)
    h.delta("resp_1", AUDIO_20MS)
    h.up("response.output_audio.done", **part)
    h.up("response.output_audio_transcript.done", **part, transcript="Hello there.")
    h.up("response.output_text.done", **part, text="Hello there.")
    h.done("resp_1")
    assert h.client_types() == ["AgentThinking", "AgentStartedSpeaking", "<audio>", "ConversationText",
                                "AgentAudioDone", "LatencyReport"]  # P6.2, then the turn's LatencyReport


def test_p6_failed_response_becomes_error_with_upstream_code():
    h = Harness()
    h.ready()
    h.created("resp_1")
    h.done("resp_1", status="failed", type="failed",
           error={"type": "server_error", "code": "rate_limit_exceeded", "message": "slow down"})
    assert h.client_types()[-2:] == ["AgentAudioDone", "Error"]  # no output: no LatencyReport
    assert h.of_type("Error")[-1] == {"type": "Error", "code": "rate_limit_exceeded", "description": "slow down"}


def test_p6_4_voice_turn_latency_counts_from_speech_stopped():
    h = Harness()
    h.ready()
    h.now = 10.0
    h.up("input_audio_buffer.speech_stopped", audio_end_ms=4000, item_id="item_u")
    h.now = 10.4
    h.created("resp_1")
    h.now = 10.7
    h.delta("resp_1", AUDIO_20MS)
    started = h.of_type("AgentStartedSpeaking")[0]
    assert started == {"type": "AgentStartedSpeaking", "total_latency": pytest.approx(0.7),
                       "tts_latency": pytest.approx(0.3), "ttt_latency": pytest.approx(0.4)}


# ----------------------------------------------------------------------- P7


def test_p7_barge_in_truncates_at_what_was_heard_and_drops_later_audio():
    h = Harness()
    h.ready()
    h.now = 1.0
    h.created("resp_1")
    h.delta("resp_1", AUDIO_20MS * 50, item_id="item_speech")  # 1 s of audio at once (faster than real time)
    h.now = 1.3  # the client can have heard 300 ms
    h.clear()
    h.up("input_audio_buffer.speech_started", audio_start_ms=5000, item_id="item_u")
    assert h.client_types() == ["UserStartedSpeaking"]
    truncate = h.last_upstream("conversation.item.truncate")
    assert (truncate["item_id"], truncate["content_index"], truncate["audio_end_ms"]) == ("item_speech", 0, 300)
    h.delta("resp_1", AUDIO_20MS, item_id="item_speech")
    assert "<audio>" not in h.client_types()
    h.done("resp_1", status="cancelled", type="cancelled", reason="turn_detected")
    assert h.client_types() == ["UserStartedSpeaking", "AgentAudioDone", "LatencyReport"]


def test_p7_audio_sent_bounds_truncation_when_slower_than_real_time():
    h = Harness()
    h.ready()
    h.now = 1.0
    h.created("resp_1")
    h.delta("resp_1", AUDIO_20MS * 5, item_id="item_speech")  # 100 ms sent
    h.now = 3.0  # 2 s of wall time, but only 100 ms could be heard
    h.up("input_audio_buffer.speech_started", audio_start_ms=5000, item_id="item_u")
    assert h.last_upstream("conversation.item.truncate")["audio_end_ms"] == 100


def test_p7_no_truncate_when_no_agent_audio_is_playing():
    h = Harness()
    h.ready()
    h.up("input_audio_buffer.speech_started", audio_start_ms=0, item_id="item_u")
    assert "conversation.item.truncate" not in h.upstream_types()
    assert h.client_types()[-1] == "UserStartedSpeaking"


def test_p7_spoken_greeting_is_cut_off_but_never_truncated():
    """P3.5 + P7: the out-of-band greeting's item is not in the conversation."""
    h = Harness(greeting="speak")
    h.ready(settings_with(greeting="Hello and welcome."))
    create = h.last_upstream("response.create")
    h.created("resp_g", create["response"]["metadata"])
    h.delta("resp_g", AUDIO_20MS * 10, item_id="item_greeting")
    h.up("input_audio_buffer.speech_started", audio_start_ms=100, item_id="item_u")
    h.delta("resp_g", AUDIO_20MS, item_id="item_greeting")
    assert "conversation.item.truncate" not in h.upstream_types()
    assert h.client_types().count("<audio>") == 1  # later audio dropped all the same


def test_p6_1_dedupe_state_does_not_grow_across_responses():
    """P6.1 still holds within each response, and what it remembers ends with the response."""
    h = Harness()
    h.ready()
    for turn in range(50):
        response_id = f"resp_{turn}"
        h.created(response_id)
        part = dict(response_id=response_id, item_id=f"item_{turn}", output_index=0, content_index=0)
        h.up("response.output_audio_transcript.done", **part, transcript=f"answer {turn}")
        h.up("response.output_text.done", **part, text=f"answer {turn}")
        h.done(response_id)
    assert len(h.of_type("ConversationText")) == 50
    assert h.session.speech.texts_remembered == 0


def test_p1_1_json_in_a_binary_frame_is_audio_not_a_message():
    """P1.1: messages are text frames; a binary frame is microphone audio whatever it holds."""
    h = Harness()
    settings_bytes = json.dumps(DEFAULT_SETTINGS).encode()
    settings_bytes += b" " * (len(settings_bytes) % 2)  # whole samples: P5.9 would hold an odd byte back
    h.audio(settings_bytes)
    assert h.upstream_types() == []  # not taken as Settings: held as audio (P3.6)
    h.ready()
    appends = [e for e in h.upstream if e["type"] == "input_audio_buffer.append"]
    assert base64.b64decode(appends[0]["audio"]) == settings_bytes
    assert h.upstream_types().count("session.update") == 1
