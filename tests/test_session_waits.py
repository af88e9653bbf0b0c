"""Pure tests of the session's waits, bounds, secrets and the live API's order.

Each test feeds an event order the live OpenAI API is known to produce (an
`error` with `event_id: null`, a transcript after the reply, a cancel that
crosses the response's end) and checks what the proxy sends each way. Every
frame the session emits is checked against the schema oracles (deepgram-sdk
V1 types, openai GA types), and every upstream event fed to it against the
GA server-event types unless the test feeds a malformed one on purpose.
Rule numbers are PROTOCOL.md's; "issue" behaviours are named in the test.
"""

from __future__ import annotations

import copy
import json
import logging
from typing import Any

import pydantic
import pytest
from openai.types.realtime import RealtimeServerEvent

from proxy.config import load_config
from proxy.testing import DEFAULT_SETTINGS
from proxy.translate import ClientText, SessionOptions, TimerFired, ToClient, ToUpstream, UpstreamText
from proxy.translate.states import ResponsePhase

from .oracles import validate_deepgram_server_message, validate_openai_client_event
from .session_harness import Harness

_server_event = pydantic.TypeAdapter(RealtimeServerEvent)

KEY = "sk-proj-" + "A1b2C3d4" * 5
TOKEN = "client_token_" + "9z8y7x6w" * 3
LEAK = f"Incorrect API key provided: {KEY}. Or was it {TOKEN}?"
ACTIVE = "conversation_already_has_active_response"
AUDIO = b"\x00\x01" * 480


class Checked(Harness):
    """The shared harness, with the oracles on both directions."""

    def take(self, actions: list) -> list:
        from proxy.protocol.wire import encode_client, encode_upstream

        for action in actions:
            if isinstance(action, ToUpstream):
                validate_openai_client_event(json.loads(encode_upstream(action.event)))
            elif isinstance(action, ToClient):
                validate_deepgram_server_message(json.loads(encode_client(action.message)))
        return super().take(actions)

    def up(self, event_type: str, _valid: bool = True, **fields: Any) -> list:
        self._ids += 1
        event = {"type": event_type, "event_id": f"event_{self._ids}", **fields}
        if _valid:
            _server_event.validate_python(event)
        return self.take(self.session.handle(UpstreamText(json.dumps(event)), self.now))

    # --- script pieces of the live API
    def updated(self) -> list:
        return self.up("session.updated", session={"type": "realtime", "object": "realtime.session", "id": "sess_1"})

    def ready(self, settings: dict[str, Any] | None = None) -> None:
        self.send(settings or DEFAULT_SETTINGS)
        self.updated()

    def error(self, code: str | None, message: str = "refused", event_id: str | None = None) -> list:
        return self.up("error", error={"type": "invalid_request_error", "code": code, "message": message,
                                       "event_id": event_id, "param": None})

    def ack_item(self, item_id: str) -> None:
        self.up("conversation.item.added", previous_item_id=None,
                item={"id": item_id, "type": "message", "role": "user", "content": []})

    def inject_user(self, content: str = "hello") -> str:
        """InjectUserMessage; returns the id of the item it created."""
        self.send({"type": "InjectUserMessage", "content": content})
        return self.last_upstream("conversation.item.create")["item"]["id"]

    def count(self, event_type: str) -> int:
        return self.upstream_types().count(event_type)

    def errors(self, code: str | None = None) -> list[dict]:
        return [m for m in self.of_type("Error") if code is None or m["code"] == code]


def wire_text(h: Harness) -> str:
    return json.dumps([m for m in h.client if isinstance(m, dict)])


def assert_answers_a_new_user_message(h: Checked) -> None:
    """Issue 10: a new InjectUserMessage gets exactly one response.create, after its item is acknowledged."""
    before = h.count("response.create")
    item_id = h.inject_user("are you still there?")
    assert h.count("response.create") == before  # P5.1: not before the acknowledgement
    h.ack_item(item_id)
    h.ack_item(item_id)  # created, added and done all acknowledge; one response (P5.1)
    assert h.count("response.create") == before + 1


# ------------------------------------------------------------- P1.5, the key


def keyed() -> Checked:
    return Checked(secrets=(KEY, TOKEN))


def assert_scrubbed(h: Harness, message_type: str) -> None:
    sent = h.of_type(message_type)
    assert sent, f"no {message_type} sent"
    assert "[redacted]" in sent[-1]["description"]
    assert KEY not in wire_text(h) and TOKEN not in wire_text(h)


def test_p1_5_upstream_error_text_never_carries_the_key_or_a_token():
    h = keyed()
    h.ready()
    h.error("invalid_api_key", LEAK)
    assert_scrubbed(h, "Error")


def test_p1_5_rejected_first_settings_is_scrubbed():
    h = keyed()
    h.send(DEFAULT_SETTINGS)
    h.error("invalid_value", LEAK, event_id=h.last_upstream("session.update")["event_id"])
    assert_scrubbed(h, "Error")


def test_p1_5_active_response_warning_is_scrubbed():
    h = keyed()
    h.ready()
    h.error(ACTIVE, LEAK)
    assert_scrubbed(h, "Warning")


def test_p1_5_failed_response_done_is_scrubbed():
    h = keyed()
    h.ready()
    h.created("resp_1")
    h.done("resp_1", status="failed", type="failed",
           error={"type": "invalid_request_error", "code": "invalid_api_key", "message": LEAK})
    assert_scrubbed(h, "Error")


def test_p1_5_rejected_live_update_is_scrubbed():
    h = keyed()
    h.ready()
    h.send({"type": "UpdatePrompt", "prompt": "be brief"})
    h.error("invalid_value", LEAK, event_id=h.last_upstream("session.update")["event_id"])
    assert_scrubbed(h, "Error")


def test_p1_5_an_openai_key_the_proxy_was_not_told_about_is_scrubbed_too():
    h = Checked()
    h.ready()
    h.error("invalid_api_key", "Incorrect API key provided: " + "sk-" + "live0123456789abcdefABCDEF.")  # made up
    assert "sk-live" not in wire_text(h)


def test_p1_5_the_configured_key_and_tokens_reach_the_session(tmp_path):
    config = load_config([], {"OPENAI_API_KEY": KEY, "OPENAI_PROXY_AUTH_TOKENS": TOKEN}, cwd=str(tmp_path))
    assert set(SessionOptions.from_config(config).secrets) == {KEY, TOKEN}


# --------------------------------------------------------- no state may wedge


@pytest.mark.parametrize("turn_detection", ["server_vad", "none"])
def test_error_naming_our_response_create_ends_that_request(turn_detection):
    """Issue 10: the session no longer believes a response is pending forever."""
    h = Checked(turn_detection=turn_detection)
    h.ready()
    h.ack_item(h.inject_user("first"))
    create = h.last_upstream("response.create")
    h.error("invalid_value", "bad response parameters", event_id=create["event_id"])
    assert h.errors("invalid_value")
    assert h.session.responses.phase is ResponsePhase.IDLE
    # Updates are no longer deferred, agent messages no longer refused (P5.3, P5.7).
    h.send({"type": "UpdatePrompt", "prompt": "be brief"})
    assert h.last_upstream("session.update")["session"]["instructions"].endswith("be brief")
    h.send({"type": "InjectAgentMessage", "message": "One moment."})
    assert not h.of_type("InjectionRefused")
    h.created_for_last_request("resp_agent")
    h.done("resp_agent")
    h.updated()
    assert h.of_type("PromptUpdated")
    assert_answers_a_new_user_message(h)


@pytest.mark.parametrize("turn_detection", ["server_vad", "none"])
def test_malformed_response_done_still_ends_the_response(turn_detection):
    h = Checked(turn_detection=turn_detection)
    h.ready()
    h.ack_item(h.inject_user("first"))
    h.created_for_last_request("resp_1")
    h.up("response.done", _valid=False, response={"id": "resp_1", "status": "completed", "status_details": "garbled"})
    assert h.of_type("AgentAudioDone")  # exactly once per response (P6)
    assert_answers_a_new_user_message(h)


def test_cannot_update_voice_without_event_id_rejects_the_speak_update_once():
    """The live API sends this error with `event_id: null` (P5.5, P5.7)."""
    h = Checked()
    h.ready()
    h.send({"type": "UpdateSpeak", "speak": {"provider": {"type": "open_ai", "voice": "verse"}}})
    h.send({"type": "UpdatePrompt", "prompt": "be brief"})
    assert h.count("session.update") == 2  # Settings, speak; the prompt waits its turn
    h.error("cannot_update_voice", "Cannot update a conversation's voice if assistant audio is present.")
    assert len(h.errors()) == 1 and h.errors()[0]["code"] == "cannot_update_voice"
    assert h.session.applied.voice == "alloy" and not h.of_type("SpeakUpdated")
    # The next update goes at once, not after the update timeout.
    assert h.count("session.update") == 3
    h.updated()
    assert h.of_type("PromptUpdated")
    assert len(h.errors()) == 1  # no UPDATE_TIMEOUT follows


def test_rejected_first_settings_without_event_id_lets_a_corrected_one_through():
    h = Checked()
    h.send(DEFAULT_SETTINGS)
    h.error("invalid_value", "Invalid value: 'bogus'. Supported values are: ...")
    assert h.errors("invalid_value")[0]["description"].startswith("Settings rejected by the upstream")
    h.send(DEFAULT_SETTINGS)
    assert h.count("session.update") == 2  # sent, not held until the hold overflows
    h.updated()
    assert h.of_type("SettingsApplied") and h.closed is None


def test_active_response_race_without_event_id_keeps_the_typed_messages_reply():
    """The upstream's own response won the race; ours is asked again after it."""
    h = Checked()
    h.ready()
    h.ack_item(h.inject_user("what time is it?"))
    assert h.count("response.create") == 1
    h.created("resp_vad")  # the upstream's turn detection, no metadata: taken for ours at first
    h.error(ACTIVE, "Conversation already has an active response in progress: resp_vad.")
    assert h.of_type("Warning")[-1]["code"] == ACTIVE and not h.errors()
    h.done("resp_vad")
    assert h.count("response.create") == 2


def test_active_response_race_before_the_winner_is_seen_asks_again_after_it():
    h = Checked()
    h.ready()
    h.ack_item(h.inject_user("what time is it?"))
    h.created("resp_vad", {"origin": "vad"})  # the winner, visibly not ours
    h.error(ACTIVE, "Conversation already has an active response in progress: resp_vad.")
    assert h.count("response.create") == 1
    h.done("resp_vad")
    assert h.count("response.create") == 2


@pytest.mark.parametrize("code", ["idle_timeout", "session_max_duration", "input_audio_buffer_commit_empty"])
def test_errors_about_the_session_reject_no_request(code):
    """Rule 2 of the waits: these codes name no request, so the pending update stays pending."""
    h = Checked()
    h.ready()
    h.send({"type": "UpdatePrompt", "prompt": "be brief"})
    h.error(code, "Your session hit the maximum duration of 60 minutes.")
    assert h.errors(code)[-1]["description"] == "Your session hit the maximum duration of 60 minutes."
    assert h.session.updates.pending
    h.updated()
    assert h.of_type("PromptUpdated")


def test_an_update_deadline_queued_behind_its_acknowledgement_is_stale():
    """Timers carry a token: the first update's expiry cannot time out the second (P5.7)."""
    h = Checked()
    h.ready()
    h.send({"type": "UpdatePrompt", "prompt": "one"})
    first_token = h.tokens["update"]
    h.send({"type": "UpdatePrompt", "prompt": "two"})
    h.updated()  # the first one's acknowledgement...
    assert h.tokens["update"] != first_token  # ...and the second update armed its own deadline
    # ...while the first deadline had already expired and was on its way.
    h.take(h.session.handle(TimerFired("update", first_token), h.now + 10))
    assert not h.errors("UPDATE_TIMEOUT")
    h.updated()
    assert len(h.of_type("PromptUpdated")) == 2 and not h.errors()


def test_a_response_create_the_upstream_never_answers_ends_at_its_deadline():
    """Every wait has an exit: response.create -> response.created, error, or RESPONSE_TIMEOUT."""
    h = Checked()
    h.ready()
    h.ack_item(h.inject_user("first"))
    assert h.session.responses.phase is ResponsePhase.REQUESTED
    assert h.timers["response"] == h.now + SessionOptions().response_timeout_s
    h.fire("response")
    assert h.errors("RESPONSE_TIMEOUT") and h.session.responses.phase is ResponsePhase.IDLE
    assert_answers_a_new_user_message(h)


# ----------------------------------------------- issue 15: waits that end


def test_p5_1_item_acknowledged_under_another_id_is_answered_after_the_deadline(caplog):
    h = Checked()
    h.ready()
    item_id = h.inject_user("hello?")
    h.ack_item("item_the_upstream_made_up")
    assert h.count("response.create") == 0
    timer = f"item_ack:{item_id}"
    assert h.timers[timer] == h.now + SessionOptions().item_ack_timeout_s
    with caplog.at_level(logging.WARNING, logger="proxy.session"):
        h.fire(timer)
    assert h.count("response.create") == 1
    record = next(r for r in caplog.records if "acknowledgement" in r.getMessage())
    assert record.item_id == item_id and record.missing_signal == "conversation.item.added"
    h.ack_item(item_id)  # a late acknowledgement asks for nothing more
    assert h.count("response.create") == 1


def test_p5_1_an_acknowledged_item_disarms_its_deadline():
    h = Checked()
    h.ready()
    item_id = h.inject_user()
    token = h.tokens[f"item_ack:{item_id}"]
    h.ack_item(item_id)
    assert f"item_ack:{item_id}" not in h.timers
    h.take(h.session.handle(TimerFired(f"item_ack:{item_id}", token), h.now + 5))  # already on its way
    assert h.count("response.create") == 1


def test_p5_1_an_item_the_upstream_rejects_is_forgotten():
    h = Checked()
    h.ready()
    item_id = h.inject_user()
    h.error("invalid_value", "bad item", event_id=h.last_upstream("conversation.item.create")["event_id"])
    assert h.errors("invalid_value") and f"item_ack:{item_id}" not in h.timers
    assert h.count("response.create") == 0
    assert len(h.session.waits) == 0  # pruned, not left awaiting acknowledgement


# ----------------------------------------------------- nothing grows unbounded


def busy(h: Checked) -> None:
    h.ready()
    h.created("resp_long", {"origin": "vad"})


def test_pending_response_queue_is_capped():
    h = Checked()
    busy(h)
    cap = SessionOptions().max_queued_responses
    for n in range(cap + 8):
        h.send({"type": "InjectAgentMessage", "message": f"note {n}", "behavior": "queue"})
    assert len(h.errors("RESPONSE_QUEUE_FULL")) == 8
    assert h.session.responses.queued == cap


def test_live_update_queue_is_capped():
    h = Checked()
    busy(h)  # P5.7: updates wait while a response is active
    cap = SessionOptions().max_queued_updates
    for n in range(cap + 8):
        h.send({"type": "UpdatePrompt", "prompt": f"rule {n}"})
    assert len(h.errors("UPDATE_QUEUE_FULL")) == 8
    assert h.count("session.update") == 1  # only the Settings


def test_items_awaiting_acknowledgement_are_capped():
    h = Checked()
    h.ready()
    cap = SessionOptions().max_pending_messages
    for n in range(cap + 6):
        h.send({"type": "InjectUserMessage", "content": f"m{n}"})
    assert len(h.errors("PENDING_MESSAGES_FULL")) == 6
    assert h.count("conversation.item.create") == cap
    # A rejected item frees its place.
    h.error("invalid_value", "bad item", event_id=h.last_upstream("conversation.item.create")["event_id"])
    h.send({"type": "InjectUserMessage", "content": "one more"})
    assert h.count("conversation.item.create") == cap + 1


def test_repeated_invalid_frames_are_logged_at_a_bounded_rate(caplog):
    h = Checked()
    h.ready()
    with caplog.at_level(logging.INFO, logger="proxy.session"):
        for _ in range(200):
            h.take(h.session.handle(ClientText("{not json"), h.now))
        records = [r for r in caplog.records if r.getMessage() == "error sent to client"]
        assert len(h.errors("INVALID_MESSAGE")) == 200  # each frame still gets its Error (P5.10)
        assert len(records) <= 5
        h.now += 60
        h.take(h.session.handle(ClientText("{not json"), h.now))
    last = [r for r in caplog.records if r.getMessage() == "error sent to client"][-1]
    assert last.suppressed == 200 - len(records)


# ----------------------------------------------------- the live API's order


def spoken_turn(h: Checked, *, transcript_first: bool = False) -> None:
    """A VAD turn in the order the live API often uses: the user's transcript last."""
    h.up("input_audio_buffer.speech_started", audio_start_ms=0, item_id="item_user")
    h.up("input_audio_buffer.speech_stopped", audio_end_ms=900, item_id="item_user")
    h.up("input_audio_buffer.committed", item_id="item_user", previous_item_id=None)
    if transcript_first:
        transcribed(h)
    h.created("resp_1")
    h.delta("resp_1", AUDIO, item_id="item_agent")
    h.up("response.output_audio_transcript.done", response_id="resp_1", item_id="item_agent", output_index=0,
         content_index=0, transcript="It is noon.")


def transcribed(h: Checked) -> None:
    h.up("conversation.item.input_audio_transcription.completed", item_id="item_user", content_index=0,
         transcript="What time is it?", usage={"type": "duration", "seconds": 1})


def texts(h: Harness) -> list[tuple[str, str]]:
    return [(m["role"], m["content"]) for m in h.of_type("ConversationText")]


def test_assistant_text_waits_for_its_turns_user_transcript():
    h = Checked()
    h.ready()
    h.clear()
    spoken_turn(h)
    assert "<audio>" in h.client_types()  # the audio is never held
    assert texts(h) == []
    h.done("resp_1")
    transcribed(h)
    assert texts(h) == [("user", "What time is it?"), ("assistant", "It is noon.")]
    assert "transcript:resp_1" not in h.timers


def test_no_hold_when_the_transcript_came_first():
    h = Checked()
    h.ready()
    h.clear()
    spoken_turn(h, transcript_first=True)
    assert texts(h) == [("user", "What time is it?"), ("assistant", "It is noon.")]
    assert h.client_types().index("ConversationText") < h.client_types().index("AgentStartedSpeaking")


def test_failed_transcription_is_a_warning_and_releases_the_text():
    h = Checked()
    h.ready()
    spoken_turn(h)
    h.up("conversation.item.input_audio_transcription.failed", item_id="item_user", content_index=0,
         error={"type": "transcription_error", "code": "audio_unintelligible", "message": "could not transcribe",
                "param": None})
    assert h.of_type("Warning")[-1]["code"] == "TRANSCRIPT_FAILED"
    assert texts(h)[-1] == ("assistant", "It is noon.")


def test_transcript_wait_is_bounded_by_the_configured_deadline():
    h = Checked(transcript_wait_s=0.5)
    h.ready()
    spoken_turn(h)
    assert h.timers["transcript:resp_1"] == h.now + 0.5
    h.fire("transcript:resp_1")
    assert h.of_type("Warning")[-1]["code"] == "TRANSCRIPT_LATE"
    assert texts(h)[-1] == ("assistant", "It is noon.")
    transcribed(h)  # late, but not lost
    assert texts(h)[-1] == ("user", "What time is it?")


def test_response_cancel_not_active_after_our_own_cancel_is_no_error():
    h = Checked()
    busy(h)
    h.delta("resp_long", AUDIO)
    h.send({"type": "InjectAgentMessage", "message": "Sorry to interrupt.", "behavior": "interrupt"})
    cancel = h.last_upstream("response.cancel")
    h.done("resp_long")  # it ended on its own while our cancel was in flight
    h.error("response_cancel_not_active", "Cancellation failed: no active response found", event_id=cancel["event_id"])
    assert not h.errors()
    assert h.count("response.create") == 1  # the interrupting message goes on


def test_response_cancel_not_active_without_event_id_after_our_cancel_is_no_error():
    h = Checked()
    busy(h)
    h.send({"type": "InjectAgentMessage", "message": "Sorry to interrupt.", "behavior": "interrupt"})
    h.done("resp_long")
    h.error("response_cancel_not_active", "Cancellation failed: no active response found")
    assert not h.errors()


def test_response_cancel_not_active_we_did_not_cause_is_still_reported():
    h = Checked()
    h.ready()
    h.error("response_cancel_not_active", "Cancellation failed: no active response found")
    assert h.errors("response_cancel_not_active")


def test_function_calls_of_a_barged_in_response_are_not_handed_to_the_client():
    h = Checked()
    h.ready()
    h.created("resp_1", {"origin": "vad"})
    h.delta("resp_1", AUDIO)
    h.up("input_audio_buffer.speech_started", audio_start_ms=100, item_id="item_user")  # P7
    h.call("resp_1", "call_1")
    h.done("resp_1", status="cancelled", type="cancelled", reason="turn_detected")
    assert not h.of_type("FunctionCallRequest")
    assert h.count("response.create") == 0


def test_function_calls_of_a_response_we_cancelled_are_not_handed_to_the_client():
    h = Checked()
    busy(h)
    h.send({"type": "InjectAgentMessage", "message": "Stop.", "behavior": "interrupt"})
    h.call("resp_long", "call_1")
    assert not h.of_type("FunctionCallRequest")


def test_function_calls_of_a_live_response_are_still_handed_over():
    h = Checked()
    h.ready()
    h.created("resp_1", {"origin": "vad"})
    h.call("resp_1", "call_1")
    assert h.of_type("FunctionCallRequest")


# -------------------------------------------------------- edges of the text


def test_p5_10_lone_surrogate_is_invalid_message_and_nothing_goes_upstream():
    h = Checked()
    h.ready()
    before = len(h.upstream)
    h.take(h.session.handle(ClientText('{"type": "InjectUserMessage", "content": "cut \\ud83d"}'), h.now))
    assert h.errors("INVALID_MESSAGE") and len(h.upstream) == before and h.closed is None
    # A whole emoji (a surrogate pair in JSON) is text like any other.
    h.take(h.session.handle(ClientText('{"type": "InjectUserMessage", "content": "ok \\ud83d\\ude00"}'), h.now))
    assert texts(h)[-1] == ("user", "ok \U0001f600")


def test_p5_10_lone_surrogate_in_a_key_or_a_list_too():
    h = Checked()
    h.ready()
    settings = copy.deepcopy(DEFAULT_SETTINGS)
    settings["agent"]["think"]["functions"] = [{"name": "f", "description": "x", "parameters": {"\\udc00": 1}}]
    h.take(h.session.handle(ClientText(json.dumps(settings).replace("\\\\udc00", "\\udc00")), h.now))
    assert h.errors("INVALID_MESSAGE")
