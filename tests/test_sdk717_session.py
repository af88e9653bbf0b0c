"""The messages deepgram-sdk 7.17 added, fed to the pure Session (README "Deepgram V1 coverage").

Every client message and upstream event these tests see is also checked
against the SDK's and the GA schemas (P1.4), at the end of each test.
"""

from __future__ import annotations

import base64
import copy
import json
from typing import Any

import pytest

from proxy.protocol.deepgram import FunctionEndpoint
from proxy.testing import DEFAULT_SETTINGS
from proxy.translate import CallEndpoint, FunctionResult

from .oracles import validate_deepgram_server_message, validate_openai_client_event
from .session_harness import Harness

CHUNK = b"\x01\x00" * 480  # 20 ms of PCM16 at 24 kHz


@pytest.fixture
def checked():
    """Harnesses made here are schema-checked (P1.4) when the test ends."""
    made: list[Harness] = []

    def make(**options: Any) -> Harness:
        h = Harness(**options)
        made.append(h)
        return h

    yield make
    for h in made:
        for message in h.client:
            if isinstance(message, dict):
                validate_deepgram_server_message(message)
        for event in h.upstream:
            validate_openai_client_event(event)


def settings(**agent: Any) -> dict[str, Any]:
    result = copy.deepcopy(DEFAULT_SETTINGS)
    result["agent"].update(agent)
    return result


def endpoints(h: Harness, actions: list) -> list[CallEndpoint]:
    return [action for action in actions if isinstance(action, CallEndpoint)]


# ------------------------------------------------------------- ForceEndTurn


def test_force_end_turn_commits_then_asks_for_a_response_with_turn_detection_none(checked):
    """Push-to-talk: OPENAI_PROXY_TURN_DETECTION=none, audio, ForceEndTurn -> commit, response.create."""
    h = checked(turn_detection="none")
    h.ready()
    assert h.last_upstream("session.update")["session"]["audio"]["input"]["turn_detection"] is None
    for _ in range(10):
        h.audio(CHUNK)
    assert "input_audio_buffer.commit" not in h.upstream_types()  # nothing ends a turn by itself
    h.clear()
    h.send({"type": "ForceEndTurn"})
    assert h.upstream_types() == ["input_audio_buffer.commit", "response.create"]
    h.created_for_last_request("resp_1")
    h.delta("resp_1", CHUNK)
    h.done("resp_1")
    assert h.client_types() == ["AgentThinking", "AgentStartedSpeaking", "<audio>", "AgentAudioDone", "LatencyReport"]


def test_force_end_turn_with_no_or_too_little_audio_sends_nothing(checked):
    h = checked(turn_detection="none")
    h.ready()
    h.clear()
    h.send({"type": "ForceEndTurn"})  # nothing said since the last turn
    assert h.upstream == [] and h.client == []
    h.audio(CHUNK * 2)  # 40 ms: the upstream would refuse to commit it
    h.clear()
    h.send({"type": "ForceEndTurn"})
    assert h.upstream == [] and [m["code"] for m in h.of_type("Warning")] == ["TURN_TOO_SHORT"]
    h.audio(CHUNK * 3)  # the short start was kept: 100 ms now
    h.send({"type": "ForceEndTurn"})
    assert h.upstream_types()[-2:] == ["input_audio_buffer.commit", "response.create"]


def test_audio_after_a_forced_end_counts_for_the_next_turn(checked):
    """The upstream's `committed` for our own commit does not zero what came after it."""
    h = checked(turn_detection="none")
    h.ready()
    for _ in range(10):
        h.audio(CHUNK)
    h.send({"type": "ForceEndTurn"})
    for _ in range(10):
        h.audio(CHUNK)  # the next turn starts before the upstream confirms the commit
    h.up("input_audio_buffer.committed", item_id="item_u1", previous_item_id=None)
    h.send({"type": "ForceEndTurn"})
    assert h.upstream_types().count("input_audio_buffer.commit") == 2
    assert h.of_type("Warning") == []


def test_force_end_turn_waits_behind_an_active_response(checked):
    h = checked(turn_detection="none")
    h.ready()
    h.send({"type": "InjectUserMessage", "content": "hi"})
    h.up("conversation.item.added", item={"id": h.last_upstream("conversation.item.create")["item"]["id"]})
    h.created_for_last_request("resp_1")
    for _ in range(10):
        h.audio(CHUNK)
    h.send({"type": "ForceEndTurn"})
    assert h.upstream_types().count("response.create") == 1  # never two at once (P5.1)
    assert h.upstream_types()[-1] == "input_audio_buffer.commit"
    h.done("resp_1")
    assert h.upstream_types()[-1] == "response.create"


def test_force_end_turn_with_server_vad_acts_only_while_the_user_speaks(checked):
    h = checked()
    h.ready()
    for _ in range(10):
        h.audio(CHUNK)
    h.clear()
    h.send({"type": "ForceEndTurn"})
    assert h.upstream == []  # the VAD ends turns; nobody is speaking
    h.up("input_audio_buffer.speech_started", audio_start_ms=0, item_id="item_u")
    h.audio(CHUNK * 5)
    h.send({"type": "ForceEndTurn"})
    assert h.upstream_types()[-2:] == ["input_audio_buffer.commit", "response.create"]
    h.up("input_audio_buffer.committed", item_id="item_u")
    h.clear()
    h.send({"type": "ForceEndTurn"})
    assert h.upstream == []


# ------------------------------------------------------------- UpdateListen


def test_update_listen_is_a_transcription_update_acknowledged_by_listen_updated(checked):
    h = checked()
    h.ready(settings(language="de"))
    h.send({"type": "UpdateListen", "listen": {"provider": {
        "version": "v2", "type": "deepgram", "model": "flux-general-en", "keyterms": ["Zoom", "Glide"]}}})
    session = h.last_upstream("session.update")["session"]
    assert session == {"type": "realtime", "audio": {"input": {"transcription": {
        "model": "gpt-4o-mini-transcribe", "language": "de", "prompt": "Zoom, Glide"}}}}
    assert h.of_type("ListenUpdated") == []  # not before the upstream applied it (P5.7)
    h.up("session.updated", session={})
    assert len(h.of_type("ListenUpdated")) == 1


def test_update_listen_follows_the_update_rules(checked):
    """P5.7: deferred while a response is active; a rejection is an Error, not ListenUpdated."""
    h = checked()
    h.ready()
    h.created("resp_1")
    h.send({"type": "UpdateListen", "listen": {"provider": {"type": "deepgram", "model": "whisper-1", "language": "fr-FR"}}})
    assert h.upstream_types().count("session.update") == 1
    h.done("resp_1")
    update = h.last_upstream("session.update")
    assert update["session"]["audio"]["input"]["transcription"] == {"model": "whisper-1", "language": "fr"}
    h.up("error", error={"type": "invalid_request_error", "code": "invalid_value", "message": "no",
                         "event_id": update["event_id"]})
    assert h.of_type("ListenUpdated") == [] and h.of_type("Error")[-1]["code"] == "invalid_value"


# ------------------------------------------------------- InjectAgentMessage


def test_dynamic_injection_lets_the_model_write_the_line(checked):
    h = checked()
    h.ready()
    h.clear()
    h.send({"type": "InjectAgentMessage", "is_dynamic": True})
    create = h.last_upstream("response.create")
    assert "response" not in create  # the session's own instructions: no verbatim line
    h.created_for_last_request("resp_1")
    h.send({"type": "InjectAgentMessage", "is_dynamic": True})  # default: refused while busy
    assert h.of_type("InjectionRefused") == [{"type": "InjectionRefused", "message": ""}]
    h.send({"type": "InjectAgentMessage", "is_dynamic": True, "behavior": "queue"})
    h.done("resp_1")
    assert h.upstream_types().count("response.create") == 2


def test_an_injection_with_neither_message_nor_is_dynamic_is_invalid(checked):
    h = checked()
    h.ready()
    h.send({"type": "InjectAgentMessage"})
    assert h.of_type("Error")[-1]["code"] == "INVALID_MESSAGE"
    assert "response.create" not in h.upstream_types()


# ---------------------------------------------------------------- Think Live


def test_think_live_is_acknowledged_with_a_warning_naming_what_is_not_supported(checked):
    h = checked()
    h.ready(settings(think_live={"provider": {"type": "deepgram", "version": "v1", "restricted_terms": ["refund"]}}))
    [warning] = h.of_type("Warning")
    assert warning["code"] == "THINK_LIVE_UNSUPPORTED"
    for named in ("backchannels", "frustration", "restricted_terms", "presence checks"):
        assert named in warning["description"]
    h.clear()
    h.send({"type": "UpdateThink_Live", "think_live": {"provider": {
        "agent_backchannel_sensitivity": 0, "frustration_max_count": 0, "presence_check_max_count": 0}}})
    assert h.client_types() == ["ThinkLiveUpdated"]  # nothing unsupported asked for: no Warning
    assert "session.update" not in h.upstream_types()


def test_presence_checks_prompt_after_silence_at_most_n_times(checked):
    h = checked()
    h.ready()
    h.send({"type": "UpdateThink_Live", "think_live": {"provider": {
        "agent_backchannel_sensitivity": 0, "frustration_max_count": 0,
        "presence_check_max_count": 2, "presence_check_interval_ms": 1000}}})
    assert "presence" not in h.timers  # counted from an agent turn
    h.created("resp_1")
    h.delta("resp_1", CHUNK * 50)  # one second of speech
    h.done("resp_1")
    assert h.timers["presence"] == pytest.approx(h.now + 1.0 + 3.0)  # played, then the 3 s floor
    for round_ in (1, 2):
        h.fire("presence")
        create = h.last_upstream("response.create")
        assert "still there" in create["response"]["instructions"]
        assert h.upstream_types().count("response.create") == round_
        h.created_for_last_request(f"resp_p{round_}")
        h.done(f"resp_p{round_}")
    assert "presence" not in h.timers  # at most presence_check_max_count in a row
    h.up("input_audio_buffer.speech_started", audio_start_ms=0, item_id="item_u")  # the count starts over
    h.created("resp_2")
    h.done("resp_2")
    assert h.timers["presence"] == pytest.approx(h.now + 3.0)


def test_no_presence_check_while_a_push_to_talk_turn_is_held(checked):
    h = checked(turn_detection="none")
    h.ready(settings(think_live={"provider": {"presence_check_max_count": 1, "presence_check_interval_ms": 5000}}))
    h.created("resp_1")
    h.done("resp_1")
    h.audio(CHUNK)  # the talk button is down: no VAD event says so, the audio does
    h.fire("presence")
    assert "response.create" not in h.upstream_types()


def test_a_presence_check_is_not_sent_when_the_user_spoke(checked):
    h = checked()
    h.ready(settings(think_live={"provider": {"presence_check_max_count": 1, "presence_check_interval_ms": 5000}}))
    h.created("resp_1")
    h.done("resp_1")
    assert "presence" in h.timers
    h.send({"type": "InjectUserMessage", "content": "I am here"})
    assert "presence" not in h.timers


# ------------------------------------------------- custom think-provider events


def test_custom_to_think_provider_sends_a_checked_ga_event_with_the_proxys_id(checked):
    h = checked()
    h.ready()
    h.clear()
    h.send({"type": "__customToThinkProvider", "content": {"type": "input_audio_buffer.clear", "event_id": "mine"}})
    [event] = h.upstream
    assert event["type"] == "input_audio_buffer.clear" and event["event_id"].startswith("px")  # P1.6
    for content in ({"type": "session.delete"}, "text", {"no": "type"}):
        h.send({"type": "__customToThinkProvider", "content": content})
    assert [m["code"] for m in h.of_type("Error")] == ["INVALID_MESSAGE"] * 3
    assert len(h.upstream) == 1


def test_custom_event_types_can_be_narrowed_by_the_operator(checked):
    h = checked(custom_event_types=("conversation.item.create",))
    h.ready()
    h.send({"type": "__customToThinkProvider", "content": {"type": "session.update", "session": {"type": "realtime"}}})
    assert "OPENAI_PROXY_CUSTOM_EVENT_TYPES" in h.of_type("Error")[-1]["description"]
    assert h.upstream_types().count("session.update") == 1


def test_untranslated_upstream_events_reach_clients_only_when_switched_on(checked):
    off = checked()
    off.ready()
    off.up("rate_limits.updated", rate_limits=[])
    assert off.of_type("__customFromThinkProvider") == []
    on = checked(forward_untranslated=True)
    on.ready()
    on.clear()
    on.up("rate_limits.updated", rate_limits=[])
    on.created("resp_1")  # translated events are not passed on as well
    [forwarded] = on.of_type("__customFromThinkProvider")
    assert forwarded["content"]["type"] == "rate_limits.updated"


# ------------------------------------------------------------ LatencyReport


def test_latency_report_after_a_spoken_turn(checked):
    h = checked()
    h.ready()
    h.up("input_audio_buffer.speech_started", audio_start_ms=0, item_id="item_u")
    h.now = 10.0
    h.up("input_audio_buffer.speech_stopped", audio_end_ms=900, item_id="item_u")
    h.now = 10.2
    h.up("conversation.item.input_audio_transcription.completed", item_id="item_u", content_index=0, transcript="hi")
    h.now = 10.3
    h.created("resp_1")
    h.now = 10.5
    h.up("response.output_audio_transcript.delta", response_id="resp_1", item_id="item_a", output_index=0,
         content_index=0, delta="Hel")
    h.now = 10.6
    h.delta("resp_1", CHUNK)
    h.now = 11.0
    h.done("resp_1")
    [report] = h.of_type("LatencyReport")
    assert report == pytest.approx({"type": "LatencyReport", "stt_latency": 0.2, "ttt_token_latency": 0.5,
                                    "ttt_text_latency": 0.5, "tts_latency": 0.1, "total_latency": 0.6})
    assert h.client_types()[-2:] == ["AgentAudioDone", "LatencyReport"]


def test_latency_report_of_a_function_calling_turn_has_the_tool_figure(checked):
    h = checked()
    h.ready()
    h.send({"type": "InjectAgentMessage", "message": "one moment"})  # the turn ends at response.create
    h.now = 1.0
    h.created_for_last_request("resp_1")
    h.now = 1.25
    h.up("response.function_call_arguments.delta", response_id="resp_1", item_id="item_c", output_index=0,
         call_id="call_1", delta="{")
    h.call("resp_1", "call_1")
    h.done("resp_1")
    [report] = h.of_type("LatencyReport")
    assert report == {"type": "LatencyReport", "ttt_token_latency": 1.25, "ttt_tool_latency": 1.25}


# ---------------------------------------------------- FunctionCallCancelled


def test_cancelled_response_cancels_its_unanswered_calls_and_late_answers_do_nothing(checked):
    h = checked()
    h.ready()
    h.created("resp_1")
    h.call("resp_1", "call_1", name="get_weather")
    h.call("resp_1", "call_2", name="get_time")
    h.send({"type": "FunctionCallResponse", "id": "call_2", "name": "get_time", "content": "noon"})
    h.up("input_audio_buffer.speech_started", audio_start_ms=0, item_id="item_u")  # barge-in
    h.done("resp_1", status="cancelled", type="cancelled", reason="turn_detected")
    assert h.of_type("FunctionCallCancelled") == [
        {"type": "FunctionCallCancelled", "functions": [{"id": "call_1", "name": "get_weather"}]}]
    before = list(h.upstream)
    h.send({"type": "FunctionCallResponse", "id": "call_1", "name": "get_weather", "content": "sunny"})
    assert h.upstream == before  # neither forwarded nor followed up
    assert "response.create" not in h.upstream_types()


def test_completed_response_keeps_its_calls(checked):
    h = checked()
    h.ready()
    h.created("resp_1")
    h.call("resp_1", "call_1")
    h.done("resp_1")
    assert h.of_type("FunctionCallCancelled") == []
    h.send({"type": "FunctionCallResponse", "id": "call_1", "name": "get_weather", "content": "sunny"})
    assert h.upstream_types()[-2:] == ["conversation.item.create", "response.create"]  # P5.2


# ------------------------------------------------------------------- History


def test_history_reports_messages_and_answered_calls_in_order_when_asked(checked):
    message = settings(greeting="Welcome!")
    message["flags"] = {"history": True}
    h = checked()
    h.ready(message)
    h.send({"type": "InjectUserMessage", "content": "weather?"})
    h.created("resp_1")
    h.call("resp_1", "call_1", arguments='{"city":"Oslo"}')
    h.done("resp_1")
    h.send({"type": "FunctionCallResponse", "id": "call_1", "name": "get_weather", "content": "sunny"})
    history = h.of_type("History")
    assert history == [
        {"type": "History", "role": "assistant", "content": "Welcome!"},
        {"type": "History", "role": "user", "content": "weather?"},
        {"type": "History", "function_calls": [{"id": "call_1", "name": "get_weather", "client_side": True,
                                                "arguments": '{"city":"Oslo"}', "response": "sunny"}]},
    ]
    types = h.client_types()
    assert types[types.index("ConversationText") + 1] == "History"  # each right after its text


def test_no_history_unless_asked(checked):
    h = checked()
    h.ready(settings(greeting="Welcome!"))
    assert h.of_type("History") == []


# ------------------------------------------------------ server-side functions

WEATHER = {
    "name": "get_weather",
    "description": "Weather for a city",
    "parameters": {"type": "object", "properties": {"city": {"type": "string"}}},
    "endpoint": {"url": "https://api.example.com/weather", "method": "POST", "headers": {"authorization": "Bearer x"}},
}


def weather_settings() -> dict[str, Any]:
    return settings(think={**DEFAULT_SETTINGS["agent"]["think"], "functions": [WEATHER]})


def test_an_endpoint_not_on_the_allowlist_is_invalid_settings_naming_the_function(checked):
    h = checked()  # OPENAI_PROXY_FUNCTION_HOSTS empty, the default
    h.send(weather_settings())
    [error] = h.of_type("Error")
    assert error["code"] == "INVALID_SETTINGS" and "get_weather" in error["description"]
    assert h.upstream == []  # P3.7: nothing upstream, a corrected Settings may follow


def test_a_server_side_call_runs_in_the_proxy_and_its_result_answers_the_round(checked):
    h = checked(function_hosts=("api.example.com",))
    h.ready(weather_settings())
    assert "endpoint" not in json.dumps(h.last_upstream("session.update"))  # P4 tools row
    h.created("resp_1")
    actions = h.take(h.session.handle(_call_event("resp_1", "call_1"), h.now))
    [call] = endpoints(h, actions)
    assert call == CallEndpoint(call_id="call_1", name="get_weather", arguments='{"city":"Oslo"}',
                                endpoint=FunctionEndpoint(url=WEATHER["endpoint"]["url"], method="POST",
                                                          headers={"authorization": "Bearer x"}))
    assert h.of_type("FunctionCallRequest")[-1]["functions"][0]["client_side"] is False
    h.done("resp_1")
    h.take(h.session.handle(FunctionResult("call_1", '{"forecast":"sunny"}'), h.now))
    assert h.of_type("FunctionCallResponse") == [
        {"type": "FunctionCallResponse", "id": "call_1", "name": "get_weather", "content": '{"forecast":"sunny"}'}]
    output = h.last_upstream("conversation.item.create")["item"]
    assert output == {"type": "function_call_output", "call_id": "call_1", "output": '{"forecast":"sunny"}'}
    assert h.upstream_types()[-1] == "response.create"  # the P5.2 follow-up


def test_a_client_answer_to_a_server_side_call_and_a_late_result_are_dropped(checked):
    h = checked(function_hosts=("api.example.com",))
    h.ready(weather_settings())
    h.created("resp_1")
    h.take(h.session.handle(_call_event("resp_1", "call_1"), h.now))
    before = list(h.upstream)
    h.send({"type": "FunctionCallResponse", "id": "call_1", "name": "get_weather", "content": "guess"})
    assert h.upstream == before
    h.done("resp_1", status="cancelled", type="cancelled", reason="turn_detected")
    assert h.of_type("FunctionCallCancelled") == []  # the client was never asked to answer it
    h.take(h.session.handle(FunctionResult("call_1", "late"), h.now))
    assert h.upstream == before and h.of_type("FunctionCallResponse") == []


def test_update_think_with_an_endpoint_not_allowed_is_refused(checked):
    h = checked()
    h.ready()
    h.send({"type": "UpdateThink", "think": {"provider": {"type": "open_ai"}, "prompt": "x", "functions": [WEATHER]}})
    assert h.of_type("Error")[-1]["code"] == "INVALID_MESSAGE"
    assert "get_weather" in h.of_type("Error")[-1]["description"]
    assert h.upstream_types().count("session.update") == 1


def _call_event(response_id: str, call_id: str):
    from proxy.translate import UpstreamText

    return UpstreamText(json.dumps({
        "type": "response.function_call_arguments.done", "event_id": "ev_c", "response_id": response_id,
        "item_id": f"item_{call_id}", "output_index": 0, "call_id": call_id, "name": "get_weather",
        "arguments": '{"city":"Oslo"}'}))


def test_force_end_turn_sends_the_resampler_tail_before_its_commit(checked):
    """P5.9 (issue 15): at 16 kHz the resampler holds the end of what was said; ForceEndTurn
    flushes it into the turn it commits, so every sample is in the committed buffer."""
    settings_16k = copy.deepcopy(DEFAULT_SETTINGS)
    settings_16k["audio"]["input"]["sample_rate"] = 16000
    h = checked(turn_detection="none")
    h.ready(settings_16k)
    for _ in range(10):  # 200 ms at 16 kHz, 20 ms frames
        h.audio(b"\x10\x00" * 320)
    h.send({"type": "ForceEndTurn"})
    types = h.upstream_types()
    commit = types.index("input_audio_buffer.commit")
    sent = b"".join(base64.b64decode(e["audio"]) for e in h.upstream[:commit] if e["type"] == "input_audio_buffer.append")
    assert len(sent) == 200 * 24 * 2  # all 200 ms, at 24 kHz, before the commit
    assert "input_audio_buffer.append" not in types[commit:]
