"""Schema oracles: the `openai` and `deepgram-sdk` packages' own models.

Tests only; the proxy never imports these packages (PROTOCOL.md preamble).
Both packages' models tolerate unknown fields, so each check also rejects a
field the schema does not name: "validates" means nothing extra on the wire.
"""

from __future__ import annotations

import typing
from typing import Any

import pydantic
from deepgram.agent.v1 import types as dgt
from deepgram.listen.v1.types import ListenV1Results
from openai.types.realtime import RealtimeClientEvent, RealtimeServerEvent

_client_event = pydantic.TypeAdapter(RealtimeClientEvent)
# The union carries openai's own discriminator marker, which pydantic does not
# read: look each event's model up by its `type` literal instead.
_SERVER_EVENTS: dict[str, type[pydantic.BaseModel]] = {
    typing.get_args(model.model_fields["type"].annotation)[0]: model
    for model in typing.get_args(typing.get_args(RealtimeServerEvent)[0])
}

_DEEPGRAM_SERVER_MESSAGES: dict[str, type[pydantic.BaseModel]] = {
    "Welcome": dgt.AgentV1Welcome,
    "SettingsApplied": dgt.AgentV1SettingsApplied,
    "ConversationText": dgt.AgentV1ConversationText,
    "UserStartedSpeaking": dgt.AgentV1UserStartedSpeaking,
    "AgentThinking": dgt.AgentV1AgentThinking,
    "FunctionCallRequest": dgt.AgentV1FunctionCallRequest,
    "AgentStartedSpeaking": dgt.AgentV1AgentStartedSpeaking,
    "AgentAudioDone": dgt.AgentV1AgentAudioDone,
    "Error": dgt.AgentV1Error,
    "Warning": dgt.AgentV1Warning,
    "PromptUpdated": dgt.AgentV1PromptUpdated,
    "SpeakUpdated": dgt.AgentV1SpeakUpdated,
    "ThinkUpdated": dgt.AgentV1ThinkUpdated,
    "InjectionRefused": dgt.AgentV1InjectionRefused,
    # Compatibility extra (P6, live captions): not an agent message but the
    # listen API's transcript, checked against that API's own model.
    "Results": ListenV1Results,
    "ListenUpdated": dgt.AgentV1ListenUpdated,
    "ThinkLiveUpdated": dgt.AgentV1ThinkLiveUpdated,
    "LatencyReport": dgt.AgentV1LatencyReport,
    "FunctionCallCancelled": dgt.AgentV1FunctionCallCancelled,
    "FunctionCallResponse": dgt.AgentV1ReceiveFunctionCallResponse,
    "__customFromThinkProvider": dgt.AgentV1CustomFromThinkProvider,
}
# History has two shapes under one type: a message, or a function-call round.
_HISTORY_SHAPES: dict[frozenset[str], type[pydantic.BaseModel]] = {
    frozenset({"role", "content"}): dgt.ConversationHistoryMessage,
    frozenset({"function_calls"}): dgt.FunctionCallHistoryMessage,
}


def _no_extras(model: Any, path: str = "$") -> None:
    if isinstance(model, pydantic.BaseModel):
        extra = getattr(model, "model_extra", None) or {}
        if extra:
            raise ValueError(f"{path}: fields not in the schema: {sorted(extra)}")
        for name in type(model).model_fields:
            _no_extras(getattr(model, name), f"{path}.{name}")
    elif isinstance(model, list | tuple):
        for index, value in enumerate(model):
            _no_extras(value, f"{path}[{index}]")


def validate_openai_client_event(event: dict[str, Any]) -> None:
    """P1.4, P1.6: a GA client event, with a proxy-made event_id of at most 32 characters."""
    parsed = _client_event.validate_python(event)
    _no_extras(parsed)
    event_id = event.get("event_id")
    if not isinstance(event_id, str) or not 0 < len(event_id) <= 32:
        raise ValueError(f"event_id {event_id!r} missing or longer than 32 characters (P1.6)")
    item_id = (event.get("item") or {}).get("id")
    if item_id is not None and len(item_id) > 32:
        raise ValueError(f"item id {item_id!r} longer than 32 characters (P1.6)")


def validate_openai_server_event(event: dict[str, Any]) -> None:
    """What the fake upstream sends must be a GA server event, nothing extra (its scripts stay honest)."""
    model = _SERVER_EVENTS.get(event.get("type"))
    if model is None:
        raise ValueError(f"{event.get('type')!r} is not a GA server event")
    _no_extras(model.model_validate(event))


def validate_deepgram_server_message(message: dict[str, Any]) -> None:
    """P1.4: a Deepgram agent V1 server message, or a compatibility extra of P6 (UtteranceEnd, Results)."""
    message_type = message.get("type")
    if message_type == "UtteranceEnd":
        if set(message) != {"type", "channel", "last_word_end"} or message["channel"] != [0, 1]:
            raise ValueError(f"UtteranceEnd shape: {message}")
        if not isinstance(message["last_word_end"], int | float):
            raise ValueError("UtteranceEnd.last_word_end must be a number")
        return
    model = _DEEPGRAM_SERVER_MESSAGES.get(message_type)
    if message_type == "History":
        model = _HISTORY_SHAPES.get(frozenset(message) - {"type"})
        if model is None:
            raise ValueError(f"History is neither a message nor a function-call round: {sorted(message)}")
    if model is None:
        raise ValueError(f"{message_type!r} is not a Deepgram agent V1 server message")
    parsed = model.model_validate(message)
    # The SDK models fill defaults (ConversationText.conversational_behavior);
    # what must not happen is a key the model does not know.
    unknown = set(message) - set(model.model_fields) - {"type"}
    if unknown:
        raise ValueError(f"{message_type}: fields not in the schema: {sorted(unknown)}")
    _no_extras(parsed)
