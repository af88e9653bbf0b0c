"""Deepgram Voice Agent V1 messages, both directions, as frozen attrs classes.

Client messages are structured from JSON by the one converter; unknown fields
are tolerated (clients send more than the proxy uses). Server messages carry
their wire `type` as the class constant `TYPE`; `converter.dumps` puts it first.
Shapes follow the Deepgram agent V1 schemas (`deepgram.agent.v1.types`).
"""

from __future__ import annotations

from typing import Any, ClassVar

import attrs
from .converter import converter

frozen = attrs.frozen(kw_only=True)

# --- client -> proxy --------------------------------------------------------


@frozen
class AudioInput:
    encoding: str
    sample_rate: int


@frozen
class AudioOutput:
    encoding: str = "linear16"
    sample_rate: int | None = None
    bitrate: int | None = None
    container: str | None = None


@frozen
class SettingsAudio:
    input: AudioInput | None = None
    output: AudioOutput | None = None


@frozen
class Provider:
    type: str | None = None
    model: str | None = None
    # A speak provider's voice is a string for OpenAI and Deepgram voices, an
    # object for some others; P4 decides what is usable.
    voice: Any = None
    language: str | None = None
    temperature: float | None = None


@frozen
class FunctionEndpoint:
    """Where Deepgram itself would run a server-side function (proxy.endpoints runs it here)."""

    url: str
    method: str | None = None
    headers: dict[str, str] | None = None


@frozen
class Function:
    name: str
    description: str | None = None
    parameters: Any = None
    # Deepgram-only keys, never sent upstream (P4 tools row): a function with
    # an endpoint is executed by the proxy, not by the client.
    endpoint: FunctionEndpoint | None = None
    client_side: bool | None = None


@frozen
class Think:
    provider: Provider | None = None
    prompt: str | None = None
    functions: tuple[Function, ...] = ()


@frozen
class Speak:
    provider: Provider | None = None


@frozen
class ListenProvider:
    """`agent.listen.provider`: version 1 (nova models) or version 2 (Flux)."""

    type: str | None = None
    version: str | None = None
    model: str | None = None
    language: str | None = None  # version 1
    language_hints: tuple[str, ...] | None = None  # version 2
    keyterms: tuple[str, ...] | None = None


@frozen
class Listen:
    provider: ListenProvider | None = None


@frozen
class ThinkLiveProvider:
    """Deepgram's Think Live model (backchannels, presence checks, frustration)."""

    type: str | None = None
    version: str | None = None
    agent_backchannel_sensitivity: float | None = None
    presence_check_max_count: int | None = None
    presence_check_interval_ms: int | None = None
    frustration_max_count: int | None = None
    restricted_terms: tuple[str, ...] | None = None


@frozen
class ThinkLive:
    provider: ThinkLiveProvider | None = None


@frozen
class HistoryFunctionCall:
    id: str
    name: str
    arguments: str
    response: str
    client_side: bool | None = None


@frozen
class HistoryMessage:
    role: str | None = None
    content: str | None = None
    function_calls: tuple[HistoryFunctionCall, ...] | None = None


@frozen
class Context:
    messages: tuple[HistoryMessage, ...] = ()


@frozen
class Agent:
    language: str | None = None
    listen: Listen | None = None
    # One provider block or a list of fallbacks (SDK 7.x); always a tuple here.
    think: tuple[Think, ...] = ()
    speak: tuple[Speak, ...] = ()
    think_live: ThinkLive | None = None
    greeting: str | None = None
    context: Context | None = None
    # Older clients put the history directly under `agent.messages`.
    messages: tuple[HistoryMessage, ...] | None = None

    @property
    def history(self) -> tuple[HistoryMessage, ...]:
        if self.context is not None and self.context.messages:
            return self.context.messages
        return self.messages or ()


@frozen
class Flags:
    history: bool | None = None


@frozen
class Settings:
    TYPE: ClassVar[str] = "Settings"
    audio: SettingsAudio | None = None
    agent: Agent | None = None
    flags: Flags | None = None


@frozen
class InjectUserMessage:
    TYPE: ClassVar[str] = "InjectUserMessage"
    content: str


@frozen
class InjectAgentMessage:
    """Plain (`message` given) or dynamic (`is_dynamic: true`, the model writes the line)."""

    TYPE: ClassVar[str] = "InjectAgentMessage"
    message: str | None = None
    is_dynamic: bool | None = None
    behavior: str | None = None


@frozen
class FunctionCallResponse:
    TYPE: ClassVar[str] = "FunctionCallResponse"
    id: str
    content: str
    name: str | None = None


@frozen
class KeepAlive:
    TYPE: ClassVar[str] = "KeepAlive"


@frozen
class UpdatePrompt:
    TYPE: ClassVar[str] = "UpdatePrompt"
    prompt: str


@frozen
class UpdateSpeak:
    TYPE: ClassVar[str] = "UpdateSpeak"
    speak: tuple[Speak, ...]


@frozen
class UpdateThink:
    TYPE: ClassVar[str] = "UpdateThink"
    think: tuple[Think, ...]


@frozen
class UpdateListen:
    TYPE: ClassVar[str] = "UpdateListen"
    listen: Listen


@frozen
class UpdateThinkLive:
    TYPE: ClassVar[str] = "UpdateThink_Live"
    think_live: ThinkLive


@frozen
class ForceEndTurn:
    TYPE: ClassVar[str] = "ForceEndTurn"


@frozen
class CustomToThinkProvider:
    """`content` is one OpenAI Realtime client event, checked before it is sent."""

    TYPE: ClassVar[str] = "__customToThinkProvider"
    content: Any = None


ClientMessage = (
    Settings
    | InjectUserMessage
    | InjectAgentMessage
    | FunctionCallResponse
    | KeepAlive
    | UpdatePrompt
    | UpdateSpeak
    | UpdateThink
    | UpdateListen
    | UpdateThinkLive
    | ForceEndTurn
    | CustomToThinkProvider
)

CLIENT_MESSAGE_TYPES: dict[str, type] = {
    cls.TYPE: cls
    for cls in (
        Settings,
        InjectUserMessage,
        InjectAgentMessage,
        FunctionCallResponse,
        KeepAlive,
        UpdatePrompt,
        UpdateSpeak,
        UpdateThink,
        UpdateListen,
        UpdateThinkLive,
        ForceEndTurn,
        CustomToThinkProvider,
    )
}


def _one_or_list(cls: type) -> None:
    """`think` and `speak` are one provider block or a list of fallbacks: a tuple either way.

    A single block keeps its error paths (`agent.think.prompt`); a list names
    the entry (`agent.think[1].prompt`). Which entry is used is P4's choice
    (proxy.translate.settings), not the parser's.
    """
    many = tuple[cls, ...]

    def structure(value: Any, _: type) -> Any:
        if isinstance(value, list):
            if not value:
                raise ValueError("must name at least one provider")
            return tuple(converter.structure(value, list[cls]))
        return (converter.structure(value, cls),)

    converter.register_structure_hook_func(lambda kind: kind == many, structure)


_one_or_list(Think)
_one_or_list(Speak)


# --- proxy -> client --------------------------------------------------------


@frozen
class Welcome:
    TYPE: ClassVar[str] = "Welcome"
    request_id: str


@frozen
class SettingsApplied:
    TYPE: ClassVar[str] = "SettingsApplied"


@frozen
class ConversationText:
    TYPE: ClassVar[str] = "ConversationText"
    role: str
    content: str


@frozen
class UserStartedSpeaking:
    TYPE: ClassVar[str] = "UserStartedSpeaking"


@frozen
class AgentThinking:
    TYPE: ClassVar[str] = "AgentThinking"
    content: str


@frozen
class FunctionCallRequestItem:
    id: str
    name: str
    arguments: str
    client_side: bool


@frozen
class FunctionCallRequest:
    TYPE: ClassVar[str] = "FunctionCallRequest"
    functions: tuple[FunctionCallRequestItem, ...]


@frozen
class AgentStartedSpeaking:
    TYPE: ClassVar[str] = "AgentStartedSpeaking"
    total_latency: float
    tts_latency: float
    ttt_latency: float


@frozen
class AgentAudioDone:
    TYPE: ClassVar[str] = "AgentAudioDone"


@frozen
class Error:
    TYPE: ClassVar[str] = "Error"
    description: str
    code: str


@frozen
class Warning:  # noqa: A001 - the protocol's own name
    TYPE: ClassVar[str] = "Warning"
    description: str
    code: str


@frozen
class PromptUpdated:
    TYPE: ClassVar[str] = "PromptUpdated"


@frozen
class SpeakUpdated:
    TYPE: ClassVar[str] = "SpeakUpdated"


@frozen
class ThinkUpdated:
    TYPE: ClassVar[str] = "ThinkUpdated"


@frozen
class InjectionRefused:
    TYPE: ClassVar[str] = "InjectionRefused"
    message: str


@frozen
class ListenUpdated:
    TYPE: ClassVar[str] = "ListenUpdated"


@frozen
class ThinkLiveUpdated:
    TYPE: ClassVar[str] = "ThinkLiveUpdated"


@frozen
class LatencyReport:
    """After each agent turn; only the figures measured on the proxy's clock are set."""

    TYPE: ClassVar[str] = "LatencyReport"
    stt_latency: float | None = None
    ttt_token_latency: float | None = None
    ttt_text_latency: float | None = None
    ttt_tool_latency: float | None = None
    tts_latency: float | None = None
    total_latency: float | None = None


@frozen
class CancelledCall:
    id: str
    name: str


@frozen
class FunctionCallCancelled:
    TYPE: ClassVar[str] = "FunctionCallCancelled"
    functions: tuple[CancelledCall, ...]


@frozen
class HistoryText:
    """History, conversation form: one user or assistant message."""

    TYPE: ClassVar[str] = "History"
    role: str
    content: str


@frozen
class HistoryCall:
    id: str
    name: str
    client_side: bool
    arguments: str
    response: str


@frozen
class HistoryFunctionCalls:
    """History, function-call form: one answered round."""

    TYPE: ClassVar[str] = "History"
    function_calls: tuple[HistoryCall, ...]


@frozen
class ServerFunctionCallResponse:
    """FunctionCallResponse from the server: the result of a server-side function."""

    TYPE: ClassVar[str] = "FunctionCallResponse"
    id: str
    name: str
    content: str


@frozen
class CustomFromThinkProvider:
    """An upstream event the proxy does not translate, for clients that asked for them."""

    TYPE: ClassVar[str] = "__customFromThinkProvider"
    content: Any


@frozen
class UtteranceEnd:
    """Compatibility extra (P6): Deepgram's listen-API event, not in the agent V1 schema."""

    TYPE: ClassVar[str] = "UtteranceEnd"
    channel: tuple[int, int]
    last_word_end: float


@frozen
class ResultsWord:
    word: str
    start: float
    end: float
    confidence: float


@frozen
class ResultsAlternative:
    transcript: str
    confidence: float
    # OpenAI's transcription events carry no word timings, so the proxy sends
    # none; the listen schema requires the list, empty is valid.
    words: tuple[ResultsWord, ...] = ()


@frozen
class ResultsChannel:
    alternatives: tuple[ResultsAlternative, ...]


@frozen
class ModelInfo:
    name: str
    version: str
    arch: str


@frozen
class ResultsMetadata:
    request_id: str
    model_info: ModelInfo
    model_uuid: str


@frozen
class Results:
    """Compatibility extra (P6): Deepgram's listen-API transcript, for live captions.

    Not an agent V1 message; shaped as the listen API's `Results` (deepgram-sdk
    `ListenV1Results`), which is what browser components read interim captions from.
    """

    TYPE: ClassVar[str] = "Results"
    channel_index: tuple[int, int]
    duration: float
    start: float
    is_final: bool
    speech_final: bool
    channel: ResultsChannel
    metadata: ResultsMetadata


ServerMessage = (
    Welcome
    | SettingsApplied
    | ConversationText
    | UserStartedSpeaking
    | AgentThinking
    | FunctionCallRequest
    | AgentStartedSpeaking
    | AgentAudioDone
    | Error
    | Warning
    | PromptUpdated
    | SpeakUpdated
    | ThinkUpdated
    | InjectionRefused
    | ListenUpdated
    | ThinkLiveUpdated
    | LatencyReport
    | FunctionCallCancelled
    | HistoryText
    | HistoryFunctionCalls
    | ServerFunctionCallResponse
    | CustomFromThinkProvider
    | UtteranceEnd
    | Results
)
