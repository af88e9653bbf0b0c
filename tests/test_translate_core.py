"""Pure tests of the translation state (issue 2 rules), no sockets, explicit `now`.

A `Session` is fed client frames and upstream events; what it returns is read
back as wire JSON through the server's own encoders and checked against the
schema oracles, so these tests see what a socket would carry.
"""

from __future__ import annotations

import base64
import copy
import json
from typing import Any

import pytest

from proxy.protocol.wire import encode_client, encode_upstream
from proxy.testing import DEFAULT_SETTINGS
from proxy.translate import (
    ClientAudio,
    ClientText,
    CloseClient,
    Opened,
    Session,
    SessionOptions,
    ToClient,
    ToClientAudio,
    ToUpstream,
    UpstreamClosed,
    UpstreamFailed,
    UpstreamText,
)

from .oracles import validate_deepgram_server_message, validate_openai_client_event

CONNECTION_ID = "5f0c1a2b-3c4d-4e5f-8a9b-0c1d2e3f4a5b"


class Driver:
    """Feeds one Session and records its actions as wire frames."""

    def __init__(self, **options: Any) -> None:
        self.session = Session(CONNECTION_ID, SessionOptions(**options))
        self.now = 100.0
        self.upstream: list[dict[str, Any]] = []
        self.client: list[dict[str, Any] | bytes] = []
        self.closes: list[CloseClient] = []
        self.order: list[str] = []  # "up:<type>", "client:<type>", "client:<audio>", "close:<code>"
        self._event_ids = 0
        self.take(self.session.handle(Opened(), self.now))

    def take(self, actions: list) -> list:
        for action in actions:
            if isinstance(action, ToUpstream):
                event = json.loads(encode_upstream(action.event))
                validate_openai_client_event(event)  # P1.4, P1.6
                self.upstream.append(event)
                self.order.append(f"up:{event['type']}")
            elif isinstance(action, ToClient):
                message = json.loads(encode_client(action.message))
                validate_deepgram_server_message(message)  # P1.4
                self.client.append(message)
                self.order.append(f"client:{message['type']}")
            elif isinstance(action, ToClientAudio):
                self.client.append(action.data)
                self.order.append("client:<audio>")
            elif isinstance(action, CloseClient):
                self.closes.append(action)
                self.order.append(f"close:{action.code}")
        return actions

    # --- inputs
    def send(self, message: Any) -> list:
        return self.take(self.session.handle(ClientText(json.dumps(message)), self.now))

    def text(self, frame: str) -> list:
        return self.take(self.session.handle(ClientText(frame), self.now))

    def audio(self, data: bytes) -> list:
        return self.take(self.session.handle(ClientAudio(data), self.now))

    def up(self, event_type: str, **fields: Any) -> list:
        self._event_ids += 1
        event = {"type": event_type, "event_id": f"event_{self._event_ids}", **fields}
        return self.take(self.session.handle(UpstreamText(json.dumps(event)), self.now))

    def settings(self, settings: dict[str, Any] | None = None) -> list:
        return self.send(settings or DEFAULT_SETTINGS)

    def ready(self, settings: dict[str, Any] | None = None) -> None:
        self.settings(settings)
        self.up("session.updated", session={"type": "realtime"})

    # --- reading
    def of_type(self, message_type: str) -> list[dict[str, Any]]:
        return [m for m in self.client if isinstance(m, dict) and m["type"] == message_type]

    def upstream_of(self, event_type: str) -> list[dict[str, Any]]:
        return [e for e in self.upstream if e["type"] == event_type]

    def clear(self) -> None:
        self.upstream.clear()
        self.client.clear()
        self.closes.clear()
        self.order.clear()


def settings_with(**changes: Any) -> dict[str, Any]:
    """DEFAULT_SETTINGS with dotted paths replaced (`None` deletes the key)."""
    settings = copy.deepcopy(DEFAULT_SETTINGS)
    for dotted, value in changes.items():
        *parents, last = dotted.split("__")
        node = settings
        for key in parents:
            node = node.setdefault(key, {})
        if value is None:
            node.pop(last, None)
        else:
            node[last] = value
    return settings


def appended_audio(driver: Driver) -> bytes:
    return b"".join(base64.b64decode(e["audio"]) for e in driver.upstream_of("input_audio_buffer.append"))


# ----------------------------------------------------------------- P2.1, P3


def test_p2_1_welcome_carries_the_connection_id():
    driver = Driver()
    assert driver.client == [{"type": "Welcome", "request_id": CONNECTION_ID}]
    assert driver.upstream == [] and driver.closes == []


def test_p3_1_first_settings_is_one_session_update_and_nothing_to_the_client():
    driver = Driver()
    driver.clear()
    driver.settings()
    assert [e["type"] for e in driver.upstream] == ["session.update"]
    assert driver.client == []  # SettingsApplied waits for session.updated (P3.3)


def test_p3_1_later_settings_answered_at_once_nothing_upstream():
    driver = Driver()
    driver.ready()
    driver.clear()
    driver.settings(settings_with(agent__think__prompt="a different prompt"))
    assert driver.client == [{"type": "SettingsApplied"}]
    assert driver.upstream == []


def test_p3_2_session_created_triggers_nothing():
    driver = Driver()
    driver.clear()
    driver.up("session.created", session={"type": "realtime"})
    driver.settings()
    driver.clear()
    driver.up("session.created", session={"type": "realtime"})
    assert driver.client == [] and driver.upstream == [] and driver.closes == []


def test_p3_3_session_updated_before_settings_is_not_readiness():
    driver = Driver()
    driver.clear()
    driver.up("session.updated", session={"type": "realtime"})
    assert driver.client == []
    driver.audio(b"\x00\x01" * 10)
    assert driver.upstream == []  # still held (P3.6)


def test_p3_3_order_settings_applied_context_greeting_then_held():
    """P3.3: SettingsApplied; context items (P3.4); greeting (P3.5); then held frames (P3.6)."""
    driver = Driver()
    settings = settings_with(
        agent__greeting="Hello, how can I help?",
        agent__context={"messages": [{"role": "user", "content": "earlier question"}]},
    )
    driver.settings(settings)
    driver.audio(b"\x01\x02" * 8)
    driver.send({"type": "InjectUserMessage", "content": "held question"})
    driver.clear()
    driver.up("session.updated", session={"type": "realtime"})
    assert driver.order == [
        "client:SettingsApplied",
        "up:conversation.item.create",  # context
        "up:conversation.item.create",  # greeting
        "client:ConversationText",  # greeting
        "up:input_audio_buffer.append",  # held audio
        "up:conversation.item.create",  # held InjectUserMessage
        "client:ConversationText",  # its echo, on release (P3.6)
    ]
    context, greeting, user = driver.upstream_of("conversation.item.create")
    assert context["item"]["content"] == [{"type": "input_text", "text": "earlier question"}]
    assert greeting["item"]["content"] == [{"type": "output_text", "text": "Hello, how can I help?"}]
    assert user["item"]["content"] == [{"type": "input_text", "text": "held question"}]
    assert appended_audio(driver) == b"\x01\x02" * 8


def test_p3_4_context_messages_in_order_without_response_create():
    driver = Driver()
    messages = [
        {"type": "History", "role": "user", "content": "What is your name?"},
        {"type": "History", "role": "assistant", "content": "I am the agent."},
        {"type": "History", "role": "user", "content": "Nice."},
    ]
    driver.settings(settings_with(agent__context={"messages": messages}))
    driver.clear()
    driver.up("session.updated", session={"type": "realtime"})
    items = [e["item"] for e in driver.upstream_of("conversation.item.create")]
    assert items == [
        {"type": "message", "role": "user", "content": [{"type": "input_text", "text": "What is your name?"}]},
        {"type": "message", "role": "assistant", "content": [{"type": "output_text", "text": "I am the agent."}]},
        {"type": "message", "role": "user", "content": [{"type": "input_text", "text": "Nice."}]},
    ]
    assert [e["type"] for e in driver.upstream] == ["conversation.item.create"] * 3
    assert driver.client == [{"type": "SettingsApplied"}]


def test_p3_5_greeting_text_mode():
    driver = Driver()
    driver.settings(settings_with(agent__greeting="Welcome to the desk."))
    driver.clear()
    driver.up("session.updated", session={"type": "realtime"})
    assert driver.client == [
        {"type": "SettingsApplied"},
        {"type": "ConversationText", "role": "assistant", "content": "Welcome to the desk."},
    ]
    assert [e["type"] for e in driver.upstream] == ["conversation.item.create"]
    item = driver.upstream[0]["item"]
    assert item["role"] == "assistant"
    assert item["content"] == [{"type": "output_text", "text": "Welcome to the desk."}]


def test_p3_5_empty_greeting_sends_nothing():
    driver = Driver()
    driver.settings(settings_with(agent__greeting=""))
    driver.clear()
    driver.up("session.updated", session={"type": "realtime"})
    assert driver.client == [{"type": "SettingsApplied"}]
    assert driver.upstream == []


def test_p3_6_audio_before_settings_is_held_and_released_in_order():
    driver = Driver()
    frames = [bytes([n, n]) * 40 for n in range(1, 5)]
    for frame in frames[:2]:
        driver.audio(frame)
    driver.settings()
    for frame in frames[2:]:
        driver.audio(frame)
    assert driver.upstream_of("input_audio_buffer.append") == []  # nothing before session.updated
    driver.up("session.updated", session={"type": "realtime"})
    assert appended_audio(driver) == b"".join(frames)
    assert driver.order.index("client:SettingsApplied") < driver.order.index("up:input_audio_buffer.append")


def test_p3_6_held_inject_user_message_echoed_on_release_not_before():
    driver = Driver()
    driver.settings()
    driver.clear()
    driver.send({"type": "InjectUserMessage", "content": "hi"})
    assert driver.client == [] and driver.upstream == []
    driver.up("session.updated", session={"type": "realtime"})
    assert driver.client == [
        {"type": "SettingsApplied"},
        {"type": "ConversationText", "role": "user", "content": "hi"},
    ]
    assert [e["type"] for e in driver.upstream] == ["conversation.item.create"]


# ------------------------------------------------------------------- P3.7

INVALID_SETTINGS_CASES = {
    "sample_rate as a string": (settings_with(audio__input__sample_rate="16000"), "audio.input.sample_rate"),
    "sample_rate as a boolean": (settings_with(audio__input__sample_rate=True), "audio.input.sample_rate"),
    "unsupported input encoding": (settings_with(audio__input__encoding="opus"), "audio.input.encoding"),
    "unsupported output encoding": (settings_with(audio__output__encoding="flac"), "audio.output.encoding"),
    "encoding as a number": (settings_with(audio__input__encoding=7), "audio.input.encoding"),
    "mulaw at a wrong rate": (
        settings_with(audio__input__encoding="mulaw", audio__input__sample_rate=16000),
        "audio.input.sample_rate",
    ),
    "prompt as a number": (settings_with(agent__think__prompt=42), "agent.think.prompt"),
    # An object given as another JSON type must not pass as an empty object.
    "agent as a string": (settings_with(agent="my-reusable-agent-id"), "agent"),
    "audio as a list": (settings_with(audio=[1]), "audio"),
    "audio.input as a string": (settings_with(audio__input="linear16"), "audio.input"),
    "context.messages as a string": (settings_with(agent__context={"messages": "hi"}), "agent.context.messages"),
    "a context message as a number": (settings_with(agent__context={"messages": [7]}), "agent.context.messages"),
    "function parameters not an object": (
        settings_with(agent__think__functions=[{"name": "f", "parameters": "{}"}]),
        "agent.think.functions[0].parameters",
    ),
}


@pytest.mark.parametrize("settings, field", INVALID_SETTINGS_CASES.values(), ids=INVALID_SETTINGS_CASES.keys())
def test_p3_7_invalid_settings_names_the_field_and_a_corrected_one_works(settings, field):
    driver = Driver()
    driver.clear()
    driver.settings(settings)
    assert [m["type"] for m in driver.client] == ["Error"]
    error = driver.client[0]
    assert error["code"] == "INVALID_SETTINGS"
    assert field in error["description"]
    assert driver.upstream == [] and driver.closes == []
    driver.clear()
    driver.settings()
    assert [e["type"] for e in driver.upstream] == ["session.update"]
    driver.up("session.updated", session={"type": "realtime"})
    assert driver.of_type("SettingsApplied")


# ------------------------------------------------------------------- P2.2


def test_p2_2_257th_held_frame_overflows_with_1013():
    driver = Driver()
    for _ in range(256):
        driver.audio(b"\x00\x00")
    assert driver.closes == [] and driver.of_type("Error") == []
    driver.audio(b"\x00\x00")
    assert [m["code"] for m in driver.of_type("Error")] == ["CLIENT_BUFFER_FULL"]
    assert [c.code for c in driver.closes] == [1013]
    # Closed: nothing else is produced, even when the session becomes ready.
    driver.clear()
    driver.audio(b"\x00\x00")
    driver.settings()
    assert driver.upstream == [] and driver.client == [] and driver.closes == []


def test_p2_2_settings_does_not_count_and_the_bound_covers_the_readiness_hold():
    """P2.2: one budget for the hold before the upstream opens and the P3.6 hold."""
    driver = Driver(max_held_frames=3)
    driver.audio(b"\x00\x00")
    driver.settings()  # not counted
    driver.send({"type": "InjectUserMessage", "content": "x"})
    driver.audio(b"\x00\x00")
    assert driver.closes == []
    driver.send({"type": "KeepAlive"})  # P5.8: nothing, and not held
    assert driver.closes == []
    driver.audio(b"\x00\x00")
    assert [c.code for c in driver.closes] == [1013]
    assert driver.of_type("Error")[-1]["code"] == "CLIENT_BUFFER_FULL"


def test_p2_2_byte_bound():
    driver = Driver(max_held_frames=100, max_held_bytes=1000)
    driver.audio(b"\x00" * 600)
    driver.audio(b"\x00" * 400)
    assert driver.closes == []
    driver.audio(b"\x00\x00")
    assert [c.code for c in driver.closes] == [1013]


def test_p2_2_released_hold_frees_the_budget():
    driver = Driver(max_held_frames=2)
    driver.audio(b"\x00\x00")
    driver.settings()
    driver.audio(b"\x00\x00")
    driver.up("session.updated", session={"type": "realtime"})
    for _ in range(10):
        driver.audio(b"\x00\x00")
    assert driver.closes == []
    assert len(driver.upstream_of("input_audio_buffer.append")) == 12


# ------------------------------------------------------- P5.8 - P5.10


def test_p5_8_keepalive_sends_nothing():
    driver = Driver()
    driver.clear()
    driver.send({"type": "KeepAlive"})
    driver.ready()
    driver.clear()
    driver.send({"type": "KeepAlive"})
    assert driver.upstream == [] and driver.client == []


@pytest.mark.parametrize(
    "encoding, rate, upstream_format",
    [
        ("linear16", 24000, {"type": "audio/pcm", "rate": 24000}),
        ("mulaw", 8000, {"type": "audio/pcmu"}),
        ("alaw", 8000, {"type": "audio/pcma"}),
    ],
)
def test_p5_9_audio_passes_through_per_settings(encoding, rate, upstream_format):
    driver = Driver()
    settings = settings_with(
        audio__input={"encoding": encoding, "sample_rate": rate},
        audio__output={"encoding": encoding, "sample_rate": rate, "container": "none"},
    )
    driver.ready(settings)
    session = driver.upstream_of("session.update")[0]["session"]
    assert session["audio"]["input"]["format"] == upstream_format
    assert session["audio"]["output"]["format"] == upstream_format
    frames = [bytes(range(n, n + 160)) for n in (0, 50, 90)]
    for frame in frames:
        driver.audio(frame)
    assert appended_audio(driver) == b"".join(frames)


def test_p5_9_odd_linear16_frame_keeps_its_dangling_byte():
    driver = Driver()
    driver.ready()
    driver.audio(b"\x01\x02\x03")
    assert appended_audio(driver) == b"\x01\x02"
    driver.audio(b"\x04\x05\x06\x07\x08")
    assert appended_audio(driver) == b"\x01\x02\x03\x04\x05\x06\x07\x08"


@pytest.mark.parametrize(
    "frame, code",
    [
        ("{not json", "INVALID_MESSAGE"),
        ("", "INVALID_MESSAGE"),
        ("[1, 2]", "INVALID_MESSAGE"),
        ('"Settings"', "INVALID_MESSAGE"),
        ("42", "INVALID_MESSAGE"),
        ("null", "INVALID_MESSAGE"),
        ('{"type": "NoSuchMessage"}', "UNKNOWN_MESSAGE_TYPE"),
        ('{"content": "no type"}', "UNKNOWN_MESSAGE_TYPE"),
        ('{"type": 5}', "UNKNOWN_MESSAGE_TYPE"),
        ("[" * 100_000, "INVALID_MESSAGE"),  # deeper than the JSON parser's recursion limit
        ('{"a":' * 100_000, "INVALID_MESSAGE"),
        ('{"type": "InjectUserMessage", "content": ""}', "INVALID_MESSAGE"),
        ('{"type": "InjectUserMessage", "content": "   "}', "INVALID_MESSAGE"),
        ('{"type": "InjectUserMessage"}', "INVALID_MESSAGE"),
        ('{"type": "InjectUserMessage", "content": 7}', "INVALID_MESSAGE"),
    ],
)
def test_p5_10_bad_frames_get_an_error_nothing_upstream_and_the_session_goes_on(frame, code):
    driver = Driver()
    driver.ready()
    driver.clear()
    driver.text(frame)
    assert [m["type"] for m in driver.client] == ["Error"]
    assert driver.client[0]["code"] == code
    assert driver.upstream == [] and driver.closes == []
    # Still usable: a user message goes through.
    driver.clear()
    driver.send({"type": "InjectUserMessage", "content": "still here"})
    assert [e["type"] for e in driver.upstream] == ["conversation.item.create"]


def test_p5_10_bad_frame_before_settings_is_answered_at_once():
    driver = Driver()
    driver.clear()
    driver.text("{oops")
    assert [m["code"] for m in driver.client] == ["INVALID_MESSAGE"]
    driver.ready()
    assert driver.of_type("SettingsApplied")


# ---------------------------------------------------------- P5.1 (plain)


def test_p5_1_response_create_only_after_the_item_is_acknowledged():
    driver = Driver()
    driver.ready()
    driver.clear()
    driver.send({"type": "InjectUserMessage", "content": "What's the time?"})
    assert driver.client == [{"type": "ConversationText", "role": "user", "content": "What's the time?"}]
    create = driver.upstream_of("conversation.item.create")[0]
    assert driver.upstream_of("response.create") == []
    item_id = create["item"]["id"]
    driver.up("conversation.item.added", item={"id": item_id, "type": "message"})
    driver.up("conversation.item.done", item={"id": item_id, "type": "message"})
    assert len(driver.upstream_of("response.create")) == 1


# ----------------------------------------------------------------- P6 rows


def _response_created(driver: Driver, response_id: str = "resp_1") -> None:
    driver.up("response.created", response={"id": response_id, "status": "in_progress"})


def _caption(transcript: str, *, final: bool) -> dict[str, Any]:
    """Issue 14: the listen `Results` a user transcript also becomes (captions on by default)."""
    from proxy.translate.captions import Captions

    captions = Captions(CONNECTION_ID, SessionOptions().transcription_model)
    results = captions.final("i", transcript) if final else captions.interim("i", transcript)
    return json.loads(encode_client(results))


P6_ROWS = {
    "response.created -> AgentThinking": (
        [],
        ("response.created", {"response": {"id": "resp_1", "status": "in_progress"}}),
        [{"type": "AgentThinking", "content": ""}],
    ),
    "output_audio_transcript.done -> ConversationText": (
        [_response_created],
        (
            "response.output_audio_transcript.done",
            {"response_id": "resp_1", "item_id": "item_1", "output_index": 0, "content_index": 0, "transcript": "Hi."},
        ),
        [{"type": "ConversationText", "role": "assistant", "content": "Hi."}],
    ),
    "output_text.done -> ConversationText": (
        [_response_created],
        (
            "response.output_text.done",
            {"response_id": "resp_1", "item_id": "item_1", "output_index": 0, "content_index": 0, "text": "Text."},
        ),
        [{"type": "ConversationText", "role": "assistant", "content": "Text."}],
    ),
    "function_call_arguments.done -> FunctionCallRequest": (
        [_response_created],
        (
            "response.function_call_arguments.done",
            {"response_id": "resp_1", "item_id": "item_9", "output_index": 0, "call_id": "call_7",
             "name": "get_weather", "arguments": '{"city":"Oslo"}'},
        ),
        [{"type": "FunctionCallRequest", "functions": [
            {"id": "call_7", "name": "get_weather", "arguments": '{"city":"Oslo"}', "client_side": True}]}],
    ),
    "speech_started -> UserStartedSpeaking": (
        [],
        ("input_audio_buffer.speech_started", {"audio_start_ms": 100, "item_id": "item_2"}),
        [{"type": "UserStartedSpeaking"}],
    ),
    "speech_stopped -> UtteranceEnd": (
        [],
        ("input_audio_buffer.speech_stopped", {"audio_end_ms": 2250, "item_id": "item_2"}),
        [{"type": "UtteranceEnd", "channel": [0, 1], "last_word_end": 2.25}],
    ),
    "input transcription completed -> user ConversationText, then the final caption": (
        [],
        ("conversation.item.input_audio_transcription.completed",
         {"item_id": "item_2", "content_index": 0, "transcript": "book a table"}),
        [{"type": "ConversationText", "role": "user", "content": "book a table"}, _caption("book a table", final=True)],
    ),
    "input transcription delta -> interim caption (compatibility extra)": (
        [],
        ("conversation.item.input_audio_transcription.delta", {"item_id": "item_2", "content_index": 0, "delta": "book"}),
        [_caption("book", final=False)],
    ),
    "error with code -> Error with that code": (
        [],
        ("error", {"error": {"type": "invalid_request_error", "code": "invalid_value", "message": "bad value"}}),
        [{"type": "Error", "description": "bad value", "code": "invalid_value"}],
    ),
    "error without code -> Error with the type": (
        [],
        ("error", {"error": {"type": "server_error", "message": "boom"}}),
        [{"type": "Error", "description": "boom", "code": "server_error"}],
    ),
    "idle_timeout keeps its name": (
        [],
        ("error", {"error": {"type": "invalid_request_error", "code": "idle_timeout", "message": "idle"}}),
        [{"type": "Error", "description": "idle", "code": "idle_timeout"}],
    ),
    "session_max_duration keeps its name": (
        [],
        ("error", {"error": {"type": "invalid_request_error", "code": "session_max_duration", "message": "max"}}),
        [{"type": "Error", "description": "max", "code": "session_max_duration"}],
    ),
    "active response error -> Warning": (
        [],
        ("error", {"error": {"type": "invalid_request_error", "code": "conversation_already_has_active_response",
                             "message": "Conversation already has an active response"}}),
        [{"type": "Warning", "description": "Conversation already has an active response",
          "code": "conversation_already_has_active_response"}],
    ),
    "known but ignored type -> nothing": (
        [],
        ("rate_limits.updated", {"rate_limits": []}),
        [],
    ),
    "output_audio_transcript.delta -> nothing": (
        [_response_created],
        ("response.output_audio_transcript.delta",
         {"response_id": "resp_1", "item_id": "item_1", "output_index": 0, "content_index": 0, "delta": "H"}),
        [],
    ),
    "unknown type -> nothing": (
        [],
        ("response.hologram.delta", {"delta": "??"}),
        [],
    ),
}


@pytest.mark.parametrize("setup, event, expected", P6_ROWS.values(), ids=P6_ROWS.keys())
def test_p6_table_rows(setup, event, expected):
    driver = Driver()
    driver.ready()
    for step in setup:
        step(driver)
    driver.clear()
    event_type, fields = event
    driver.up(event_type, **fields)
    assert driver.client == expected
    assert driver.upstream == [] and driver.closes == []


def test_p6_response_done_is_agent_audio_done_once_and_failed_adds_error():
    driver = Driver()
    driver.ready()
    _response_created(driver)
    driver.clear()
    driver.up("response.done", response={"id": "resp_1", "status": "failed", "status_details": {
        "type": "failed", "error": {"type": "server_error", "code": "model_error", "message": "it broke"}}})
    assert driver.client == [
        {"type": "AgentAudioDone"},
        {"type": "Error", "description": "it broke", "code": "model_error"},
    ]
    driver.clear()
    driver.up("response.done", response={"id": "resp_1", "status": "completed"})
    assert driver.of_type("AgentAudioDone") == []  # exactly once per response


def test_p6_audio_turn_order_and_bytes():
    """P6.2: AgentThinking, AgentStartedSpeaking, audio..., ConversationText, AgentAudioDone."""
    driver = Driver()
    driver.ready()
    driver.clear()
    _response_created(driver)
    chunks = [b"\x01\x00" * 240, b"\x02\x00" * 240]
    base = {"response_id": "resp_1", "item_id": "item_1", "output_index": 0, "content_index": 0}
    for chunk in chunks:
        driver.now += 0.02
        driver.up("response.output_audio.delta", **base, delta=base64.b64encode(chunk).decode())
    driver.up("response.output_audio.done", **base)
    driver.up("response.output_audio_transcript.done", **base, transcript="Hello.")
    driver.up("response.done", response={"id": "resp_1", "status": "completed"})
    assert driver.order == [
        "client:AgentThinking",
        "client:AgentStartedSpeaking",
        "client:<audio>",
        "client:<audio>",
        "client:ConversationText",
        "client:AgentAudioDone",
        "client:LatencyReport",  # after each agent turn
    ]
    assert b"".join(m for m in driver.client if isinstance(m, bytes)) == b"".join(chunks)


def test_p6_1_text_and_transcript_of_one_part_give_one_conversation_text():
    driver = Driver()
    driver.ready()
    _response_created(driver)
    driver.clear()
    base = {"response_id": "resp_1", "item_id": "item_1", "output_index": 0, "content_index": 0}
    driver.up("response.output_text.done", **base, text="Same.")
    driver.up("response.output_audio_transcript.done", **base, transcript="Same.")
    assert driver.of_type("ConversationText") == [{"type": "ConversationText", "role": "assistant", "content": "Same."}]


def test_p6_unknown_type_is_logged_once_per_type(caplog):
    driver = Driver()
    driver.ready()
    with caplog.at_level("DEBUG"):
        for _ in range(3):
            driver.up("response.hologram.delta", delta="x")
    warnings = [r for r in caplog.records if r.levelname == "WARNING" and "unknown" in r.getMessage()]
    assert len(warnings) == 1


@pytest.mark.parametrize(
    "frame",
    ["{not json", "[]", '{"no_type": 1}', "null", '"text"', "[" * 100_000, '{"type": []}', '{"type": {"a": 1}}',
     '{"type": 5}'],
)
def test_p6_3_unparseable_upstream_frame_is_dropped(frame):
    driver = Driver()
    driver.ready()
    driver.clear()
    driver.take(driver.session.handle(UpstreamText(frame), driver.now))
    assert driver.client == [] and driver.upstream == [] and driver.closes == []
    _response_created(driver)
    assert driver.of_type("AgentThinking")


def test_p6_3_malformed_known_event_is_dropped():
    driver = Driver()
    driver.ready()
    driver.clear()
    driver.up("response.output_text.done", response_id="resp_1")  # fields missing
    driver.up("conversation.item.input_audio_transcription.completed", item_id="i", transcript=5)
    assert driver.client == [] and driver.closes == []


# ---------------------------------------------------------- P2.3, P2.4


@pytest.mark.parametrize(
    "status, code, close",
    [
        (None, "UPSTREAM_UNAVAILABLE", 1011),
        (500, "UPSTREAM_UNAVAILABLE", 1011),
        (404, "UPSTREAM_UNAVAILABLE", 1011),
        (401, "UPSTREAM_UNAUTHORIZED", 1008),
        (403, "UPSTREAM_UNAUTHORIZED", 1008),
    ],
)
def test_p2_3_upstream_connect_failure(status, code, close):
    driver = Driver()
    driver.settings()
    driver.clear()
    driver.take(driver.session.handle(UpstreamFailed(status, "ConnectionRefusedError"), driver.now))
    assert driver.order == ["client:Error", f"close:{close}"]
    assert driver.client[0]["code"] == code


@pytest.mark.parametrize("code, expected", [(1000, 1000), (1001, 1011), (1006, 1011), (1011, 1011), (None, 1011)])
def test_p2_4_upstream_close_codes(code, expected):
    driver = Driver(renewal=False)  # P2.4 as written; with renewal on these renew (tests/test_renewal.py)
    driver.ready()
    driver.clear()
    driver.take(driver.session.handle(UpstreamClosed(code, "bye"), driver.now))
    assert [c.code for c in driver.closes] == [expected]
    assert driver.closes[0].reason  # a short reason
    assert len(driver.closes[0].reason.encode()) <= 123  # fits a close frame


def test_p2_4_upstream_error_before_close_is_delivered_first():
    driver = Driver()
    driver.ready()
    driver.clear()
    driver.up("error", error={"type": "invalid_request_error", "code": "session_max_duration", "message": "limit"})
    driver.take(driver.session.handle(UpstreamClosed(1000, ""), driver.now))
    assert driver.order == ["client:Error", "close:1000"]
    # After the close nothing else leaves the session.
    driver.clear()
    driver.send({"type": "InjectUserMessage", "content": "late"})
    driver.audio(b"\x00\x00")
    assert driver.order == []


# ------------------------------------------------------------------- P1.6


def test_p1_6_generated_ids_are_unique_and_short():
    driver = Driver()
    driver.settings(settings_with(agent__greeting="hi", agent__context={"messages": [
        {"role": "user", "content": "a"}, {"role": "assistant", "content": "b"}]}))
    driver.up("session.updated", session={"type": "realtime"})
    for n in range(50):
        driver.send({"type": "InjectUserMessage", "content": f"m{n}"})
        driver.audio(b"\x00\x00")
    event_ids = [e["event_id"] for e in driver.upstream]
    assert len(set(event_ids)) == len(event_ids)
    assert all(0 < len(event_id) <= 32 for event_id in event_ids)
    item_ids = [e["item"]["id"] for e in driver.upstream_of("conversation.item.create") if "id" in e["item"]]
    assert len(set(item_ids)) == len(item_ids) == 50


def test_p3_7_settings_refused_by_the_upstream_can_be_corrected():
    """The upstream's `error` naming the first session.update: an Error, no SettingsApplied, a new Settings works."""
    driver = Driver()
    driver.settings()
    update = driver.upstream_of("session.update")[0]
    driver.audio(b"\x01\x02")  # held meanwhile (P3.6)
    driver.clear()
    driver.up("error", error={"type": "invalid_request_error", "code": "invalid_value", "message": "bad voice",
                              "event_id": update["event_id"]})
    assert [m["type"] for m in driver.client] == ["Error"]
    assert driver.client[0]["code"] == "invalid_value" and "bad voice" in driver.client[0]["description"]
    assert driver.closes == [] and driver.upstream == []
    driver.clear()
    driver.settings()
    assert [e["type"] for e in driver.upstream] == ["session.update"]
    driver.up("session.updated", session={"type": "realtime"})
    assert driver.client == [{"type": "SettingsApplied"}]
    assert appended_audio(driver) == b"\x01\x02"


def test_p1_3_one_append_carries_at_most_15_mib_of_base64():
    driver = Driver()
    driver.ready()
    audio = bytes(range(256)) * (48 * 1024)  # 12 MiB of audio: 16 MiB as base64
    driver.audio(audio)
    appends = driver.upstream_of("input_audio_buffer.append")
    assert len(appends) == 2
    assert all(len(event["audio"]) <= 15 * 1024 * 1024 for event in appends)
    assert appended_audio(driver) == audio  # split, not cut: no byte lost or moved
    assert all(len(base64.b64decode(event["audio"])) % 2 == 0 for event in appends)  # no PCM16 sample split
