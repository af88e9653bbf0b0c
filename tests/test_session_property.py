"""Issue 10's property: no interleaving of events leaves a session wedged.

Hypothesis draws sequences of client messages, upstream events (well-formed,
malformed, refusing the proxy's own requests by event_id or with
`event_id: null`) and timer expiries, in any order, on a ready session. Then
an upstream that simply finishes what it was asked (ends responses,
acknowledges updates) and the clock running out every deadline must bring the
session back to where a new `InjectUserMessage` gets exactly one
`response.create`, once its item is acknowledged (P5.1). The transition
tables (`proxy.translate.states`) raise on any move they do not list, so a
sequence that would reach an undeclared state fails too. Every frame sent
either way must still pass the schema oracles.

Bounded so it runs in a few seconds in `make test`.
"""

from __future__ import annotations

import json

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from proxy.translate import ClientText, TimerFired, UpstreamText
from proxy.translate.states import ResponsePhase

from .test_session_waits import Checked

AUDIO = b"\x00\x01" * 240
ERROR_CODES = [
    None, "invalid_value", "cannot_update_voice", "conversation_already_has_active_response",
    "response_cancel_not_active", "server_error",
]


def _last_event_id(h: Checked, index: int) -> str | None:
    ids = [e["event_id"] for e in h.upstream]
    return ids[-1 - index % len(ids)] if ids else None


def _current_response(h: Checked) -> str:
    active = h.session.responses.active
    return active.id if active is not None else "resp_gone"


# One step: a function of (harness, a drawn integer). Integers pick ids, codes, timers.
def client_inject(h, n):
    h.send({"type": "InjectUserMessage", "content": f"user {n}"})


def client_agent(h, n):
    h.send({"type": "InjectAgentMessage", "message": f"agent {n}", "behavior": ["default", "queue", "interrupt"][n % 3]})


def client_prompt(h, n):
    h.send({"type": "UpdatePrompt", "prompt": f"rule {n}"})


def client_speak(h, n):
    h.send({"type": "UpdateSpeak", "speak": {"provider": {"type": "open_ai", "voice": ["verse", "ash"][n % 2]}}})


def client_think(h, n):
    h.send({"type": "UpdateThink", "think": {"provider": {"type": "open_ai"}, "prompt": f"think {n}"}})


def client_function_answer(h, n):
    h.send({"type": "FunctionCallResponse", "id": f"call_{n % 3}", "name": "get_weather", "content": "sunny"})


def client_audio(h, n):
    h.audio(AUDIO)


def client_junk(h, n):
    frame = ["{nope", '{"type":"InjectUserMessage","content":"\\ud83d"}', "[]"][n % 3]
    h.take(h.session.handle(ClientText(frame), h.now))


def up_item_ack(h, n):
    creates = [e for e in h.upstream if e["type"] == "conversation.item.create" and "id" in e["item"]]
    item_id = creates[-1 - n % len(creates)]["item"]["id"] if creates and n % 4 else f"item_other_{n}"
    h.ack_item(item_id)


def up_created(h, n):
    creates = [e for e in h.upstream if e["type"] == "response.create"]
    if creates and n % 2:
        h.created_for_last_request(f"resp_{n}")
    else:
        h.created(f"resp_{n}", {"origin": "vad"} if n % 3 else None)


def up_delta(h, n):
    h.delta(_current_response(h), AUDIO, item_id=f"item_a{n % 2}")


def up_transcript(h, n):
    h.up("response.output_audio_transcript.done", response_id=_current_response(h), item_id=f"item_a{n % 2}",
         output_index=0, content_index=0, transcript="said")


def up_done(h, n):
    status = ["completed", "cancelled", "failed", "incomplete"][n % 4]
    response_id = _current_response(h) if n % 5 else f"resp_other_{n}"
    h.up("response.done", response={"id": response_id, "status": status, "status_details": None})


def up_malformed_done(h, n):
    h.up("response.done", _valid=False, response={"id": _current_response(h), "status_details": "garbled"})


def up_call(h, n):
    h.call(_current_response(h), f"call_{n % 3}")


def up_session_updated(h, n):
    h.updated()


def up_error(h, n):
    event_id = _last_event_id(h, n) if n % 3 else None
    h.error(ERROR_CODES[n % len(ERROR_CODES)], "refused", event_id=event_id)


def up_speech(h, n):
    if n % 2:
        h.up("input_audio_buffer.speech_started", audio_start_ms=0, item_id=f"item_u{n}")
    else:
        h.up("input_audio_buffer.speech_stopped", audio_end_ms=500, item_id=f"item_u{n}")


def up_committed(h, n):
    h.up("input_audio_buffer.committed", item_id=f"item_u{n % 4}", previous_item_id=None)


def up_transcription(h, n):
    if n % 3:
        h.up("conversation.item.input_audio_transcription.completed", item_id=f"item_u{n % 4}", content_index=0,
             transcript="hi", usage={"type": "duration", "seconds": 1})
    else:
        h.up("conversation.item.input_audio_transcription.failed", item_id=f"item_u{n % 4}", content_index=0,
             error={"type": "transcription_error", "code": "x", "message": "failed", "param": None})


def up_garbage(h, n):
    h.take(h.session.handle(UpstreamText(["not json", '{"type": 5}', '{"type":"response.created"}'][n % 3]), h.now))


def timer_fires(h, n):
    """A deadline passes: the live one, or a stale expiry with an old token."""
    if not h.timers:
        return
    name = sorted(h.timers)[n % len(h.timers)]
    if n % 4 == 0:
        h.take(h.session.handle(TimerFired(name, h.tokens[name] - 1), h.now))  # stale
    else:
        h.fire(name)


def clock(h, n):
    h.now += (n % 7) * 0.3


STEPS = [
    client_inject, client_agent, client_prompt, client_speak, client_think, client_function_answer, client_audio,
    client_junk, up_item_ack, up_created, up_delta, up_transcript, up_done, up_malformed_done, up_call,
    up_session_updated, up_error, up_speech, up_committed, up_transcription, up_garbage, timer_fires, clock,
]


def settle(h: Checked) -> None:
    """An upstream that only ends the response it is playing, and time that runs out every deadline.

    Nothing else is answered: whatever the session still waits for must end
    by an answer already given, or by its deadline (issue 10: every wait has
    an exit).
    """
    for _ in range(500):
        active = h.session.responses.active
        if active is not None:
            h.done(active.id)
        elif h.timers:
            h.fire(min(h.timers, key=h.timers.get))
        else:
            return
    raise AssertionError("the session never settled")


@settings(max_examples=150, deadline=None, database=None, suppress_health_check=[HealthCheck.too_slow])
@given(st.lists(st.tuples(st.sampled_from(STEPS), st.integers(0, 1000)), max_size=40))
def test_any_interleaving_leaves_a_session_that_answers_a_new_user_message(steps):
    h = Checked(max_queued_responses=4, max_queued_updates=4, max_pending_messages=4)
    h.ready()
    for step, n in steps:
        step(h, n)
        assert h.closed is None
    settle(h)
    assert h.session.responses.phase is ResponsePhase.IDLE and h.session.responses.queued == 0
    before = h.upstream_types().count("response.create")
    h.send({"type": "InjectUserMessage", "content": "are you still there?"})
    item_id = h.last_upstream("conversation.item.create")["item"]["id"]
    assert h.upstream_types().count("response.create") == before
    h.ack_item(item_id)
    h.ack_item(item_id)
    assert h.upstream_types().count("response.create") == before + 1, json.dumps(h.upstream[-3:])
