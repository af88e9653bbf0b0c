"""OpenAI Realtime (GA) events, both directions, as frozen attrs classes.

Client events (proxy -> OpenAI) follow `openai.types.realtime` client events;
every one carries a proxy-generated `event_id` (P1.6). Server events are
structured only for the types the translation acts on; everything else is
looked at by `type` alone (P6 "everything else": nothing to the client).
"""

from __future__ import annotations

from typing import Any, ClassVar

import attrs

frozen = attrs.frozen(kw_only=True)

# --- proxy -> OpenAI --------------------------------------------------------


@frozen
class ContentPart:
    type: str  # input_text | output_text
    text: str


@frozen
class MessageItem:
    role: str
    content: tuple[ContentPart, ...]
    type: str = "message"
    id: str | None = None


@frozen
class FunctionCallItem:
    call_id: str
    name: str
    arguments: str
    type: str = "function_call"


@frozen
class FunctionCallOutputItem:
    call_id: str
    output: str
    type: str = "function_call_output"


Item = MessageItem | FunctionCallItem | FunctionCallOutputItem


@frozen
class SessionUpdate:
    TYPE: ClassVar[str] = "session.update"
    event_id: str
    # A partial update where presence matters (`turn_detection: null` turns
    # detection off), so the P4 field map builds it as a plain mapping.
    session: dict[str, Any]


@frozen
class ConversationItemCreate:
    TYPE: ClassVar[str] = "conversation.item.create"
    event_id: str
    item: Item


@frozen
class ResponseParams:
    instructions: str | None = None
    conversation: str | None = None
    metadata: dict[str, str] | None = None


@frozen
class ResponseCreate:
    TYPE: ClassVar[str] = "response.create"
    event_id: str
    response: ResponseParams | None = None


@frozen
class ResponseCancel:
    TYPE: ClassVar[str] = "response.cancel"
    event_id: str
    response_id: str | None = None


@frozen
class ConversationItemTruncate:
    TYPE: ClassVar[str] = "conversation.item.truncate"
    event_id: str
    item_id: str
    content_index: int
    audio_end_ms: int


@frozen
class InputAudioBufferAppend:
    """Serialised by hand on the hot path (see wire.py); `audio` is raw bytes here."""

    TYPE: ClassVar[str] = "input_audio_buffer.append"
    event_id: str
    audio: bytes


@frozen
class InputAudioBufferCommit:
    TYPE: ClassVar[str] = "input_audio_buffer.commit"
    event_id: str


@frozen
class CustomClientEvent:
    """A client event a Deepgram client sent itself (`__customToThinkProvider`), already checked.

    `body` is the event without `event_id`; the proxy's own id goes with it (P1.6).
    """

    event_id: str
    body: dict[str, Any]

    @property
    def TYPE(self) -> str:  # noqa: N802 - the name every client event model has
        return self.body["type"]


# Every GA client event type (openai.types.realtime.RealtimeClientEvent).
CLIENT_EVENT_TYPES = frozenset(
    {
        "session.update",
        "input_audio_buffer.append",
        "input_audio_buffer.commit",
        "input_audio_buffer.clear",
        "output_audio_buffer.clear",
        "conversation.item.create",
        "conversation.item.retrieve",
        "conversation.item.truncate",
        "conversation.item.delete",
        "response.create",
        "response.cancel",
    }
)


ClientEvent = (
    SessionUpdate
    | ConversationItemCreate
    | ResponseCreate
    | ResponseCancel
    | ConversationItemTruncate
    | InputAudioBufferAppend
    | InputAudioBufferCommit
    | CustomClientEvent
)

# --- OpenAI -> proxy --------------------------------------------------------


@frozen
class ErrorDetail:
    message: str = ""
    type: str = "error"
    code: str | None = None
    event_id: str | None = None
    param: str | None = None


@frozen
class ErrorEvent:
    error: ErrorDetail


@frozen
class StatusError:
    code: str | None = None
    message: str | None = None
    type: str | None = None


@frozen
class StatusDetails:
    type: str | None = None
    reason: str | None = None
    error: StatusError | None = None


@frozen
class Response:
    id: str
    status: str | None = None
    status_details: StatusDetails | None = None
    metadata: dict[str, str] | None = None
    conversation_id: str | None = None


@frozen
class ResponseEvent:
    """response.created and response.done."""

    response: Response


@frozen
class OutputAudioDone:
    response_id: str
    item_id: str


@frozen
class TranscriptDone:
    response_id: str
    item_id: str
    content_index: int
    transcript: str


@frozen
class TextDone:
    response_id: str
    item_id: str
    content_index: int
    text: str


@frozen
class FunctionCallArgumentsDone:
    response_id: str
    item_id: str
    call_id: str
    name: str
    arguments: str


@frozen
class SpeechStarted:
    audio_start_ms: int = 0
    item_id: str | None = None


@frozen
class SpeechStopped:
    audio_end_ms: int = 0
    item_id: str | None = None


@frozen
class TranscriptionCompleted:
    item_id: str
    transcript: str


@frozen
class AudioCommitted:
    """input_audio_buffer.committed: the user's audio became this item."""

    item_id: str


@frozen
class TranscriptionFailed:
    item_id: str
    error: StatusError | None = None


@frozen
class TranscriptionDelta:
    item_id: str
    delta: str | None = None


@frozen
class ItemRef:
    id: str | None = None
    type: str | None = None


@frozen
class ItemEvent:
    """conversation.item.created / added / done: the upstream has the item."""

    item: ItemRef


@frozen
class SessionUpdated:
    session: dict[str, Any]


# The GA server-event list (openai.types.realtime.RealtimeServerEvent): types
# the proxy knows and deliberately ignores are logged at debug only; a type
# outside this set is logged once per connection as a warning (P6 last row).
KNOWN_SERVER_EVENTS = frozenset(
    {
        "conversation.created",
        "conversation.item.created",
        "conversation.item.added",
        "conversation.item.done",
        "conversation.item.deleted",
        "conversation.item.retrieved",
        "conversation.item.truncated",
        "conversation.item.input_audio_transcription.completed",
        "conversation.item.input_audio_transcription.delta",
        "conversation.item.input_audio_transcription.failed",
        "conversation.item.input_audio_transcription.segment",
        "error",
        "input_audio_buffer.cleared",
        "input_audio_buffer.committed",
        "input_audio_buffer.dtmf_event_received",
        "input_audio_buffer.speech_started",
        "input_audio_buffer.speech_stopped",
        "input_audio_buffer.timeout_triggered",
        "output_audio_buffer.started",
        "output_audio_buffer.stopped",
        "output_audio_buffer.cleared",
        "rate_limits.updated",
        "response.created",
        "response.done",
        "response.output_audio.delta",
        "response.output_audio.done",
        "response.output_audio_transcript.delta",
        "response.output_audio_transcript.done",
        "response.output_text.delta",
        "response.output_text.done",
        "response.content_part.added",
        "response.content_part.done",
        "response.output_item.added",
        "response.output_item.done",
        "response.function_call_arguments.delta",
        "response.function_call_arguments.done",
        "response.mcp_call_arguments.delta",
        "response.mcp_call_arguments.done",
        "response.mcp_call.in_progress",
        "response.mcp_call.completed",
        "response.mcp_call.failed",
        "mcp_list_tools.in_progress",
        "mcp_list_tools.completed",
        "mcp_list_tools.failed",
        "session.created",
        "session.updated",
    }
)
