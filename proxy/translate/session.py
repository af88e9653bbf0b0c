"""The translation state machine: Deepgram Voice Agent V1 <-> OpenAI Realtime GA.

`Session` is fed what happened (a client frame, an upstream event, a deadline,
the upstream closing) together with the time on the Trio clock, and returns
the actions to take. It never touches a socket or reads a clock, so every
rule of PROTOCOL.md can be tested by feeding it events. The Trio layer
(`proxy.server`) owns the one task that calls it.
"""

from __future__ import annotations

import binascii
import json
import logging
from collections import OrderedDict, deque
from typing import Any

import attrs
import orjson

from ..audio import InboundStream, OutboundStream
from ..protocol import deepgram as dg
from ..protocol import openai as oa
from ..protocol.converter import MessageError, structure
from .actions import Action, CancelTimer, CloseClient, ToClient, ToClientAudio, ToUpstream
from .calls import FUNCTION_CALL_TIMER, FunctionCalls
from .custom_events import CustomEvents
from .endpoint_policy import FunctionHosts
from .functions import CallInfo, ServerFunctions
from .latency import TurnLatency
from .listen import ListenUpdates
from .settings import DEFAULT_OUTPUT, SessionPlan
from .setup import SAY_VERBATIM, SessionSetup
from .think_live import PRESENCE_TIMER, PresenceChecks, ThinkLiveSupport
from .turn_control import TurnControl
from .turns import (
    AGENT,
    PROMPT,
    USER,
    VOICE,
    ActiveResponse,
    AudioTrack,
    CallRound,
    ResponseRequest,
    Update,
)
from .updates import UPDATE_TIMER, LiveUpdates

# P1.3: one append carries at most 15 MiB of base64, i.e. 15 MiB * 3/4 of
# audio; kept even so a PCM16 sample is never split across two appends.
MAX_APPEND_AUDIO_BYTES = (15 * 1024 * 1024 // 4) * 3 // 2 * 2

# P6 error row: upstream codes that name an expected end of the session keep
# their names; this one is a harmless race and becomes a Warning.
ACTIVE_RESPONSE_CODE = "conversation_already_has_active_response"


@attrs.frozen
class SessionOptions:
    max_held_frames: int = 256
    max_held_bytes: int = 4 * 1024 * 1024
    greeting: str = "text"  # P3.5: text | speak
    turn_detection: str = "server_vad"
    transcription_model: str = "gpt-4o-mini-transcribe"
    function_call_deadline_s: float = 20.0
    update_timeout_s: float = 10.0
    # Server-side functions: the operator's host allowlist (empty: none).
    function_hosts: FunctionHosts = attrs.field(default=FunctionHosts(), converter=lambda v: v if isinstance(v, FunctionHosts) else FunctionHosts.parse(v))
    custom_event_types: tuple[str, ...] = ()  # __customToThinkProvider; empty = every GA type
    forward_untranslated: bool = False  # __customFromThinkProvider

    @classmethod
    def from_config(cls, config: Any) -> SessionOptions:
        return cls(**{field.name: getattr(config, field.name) for field in attrs.fields(cls)})


class Session(
    SessionSetup,
    FunctionCalls,
    ServerFunctions,
    LiveUpdates,
    ListenUpdates,
    TurnControl,
    ThinkLiveSupport,
    CustomEvents,
):
    """One client connection's translation state. Feed it events; act on what it returns."""

    def __init__(self, connection_id: str, options: SessionOptions, log: logging.LoggerAdapter | None = None):
        self.connection_id = connection_id
        self.options = options
        self.log = log or logging.LoggerAdapter(logging.getLogger("proxy.session"), {})
        self._id_prefix = "px" + connection_id.replace("-", "")[:12]
        self._next_id = 0
        self._out: list[Action] = []

        # P3: setup. `_settings_event_id` is set while the first session.update
        # is in flight; `ready` once its session.updated arrived.
        self._plan: SessionPlan | None = None
        self._settings_event_id: str | None = None
        self.ready = False
        self.closed = False
        # P2.2/P3.6: one budget for everything held until ready.
        self._held: deque[tuple[str | bytes, Any]] = deque()
        self._held_bytes = 0

        self._audio_in: InboundStream | None = None
        self._output_format = DEFAULT_OUTPUT
        self._instructions = ""
        self._tools: tuple[dict[str, Any], ...] = ()
        self._voice: str | None = None

        # Responses: at most one at a time (P5.1, P5.3).
        self._response: ActiveResponse | None = None
        self._requested: ResponseRequest | None = None
        self._response_queue: deque[ResponseRequest] = deque()
        self._awaiting_ack: dict[str, float] = {}  # InjectUserMessage item id -> time sent
        self._user_speaking = False
        self._speech_stopped_at: float | None = None
        self._last_audio: AudioTrack | None = None
        self._texts_sent: set[tuple[str, int]] = set()  # P6.1
        self._calls: CallRound | None = None  # P5.2
        self._updates: deque[Update] = deque()  # P5.7
        self._pending_update: Update | None = None
        self._unknown_types: set[str] = set()

        # Deepgram V1 as of SDK 7.17 (README "Deepgram V1 coverage").
        self._server_functions: dict[str, dg.FunctionEndpoint] = {}  # name -> endpoint
        self._call_info: dict[str, CallInfo] = {}  # the current round's calls
        self._cancelled_calls: OrderedDict[str, None] = OrderedDict()  # bounded, see functions.py
        self._report_history = False  # Settings.flags.history
        self._agent_language: str | None = None  # Settings.agent.language, for UpdateListen
        self._latency: TurnLatency | None = None  # the active response's LatencyReport
        self._transcript_at: float | None = None  # last user transcript, for stt_latency
        self._presence: PresenceChecks | None = None  # Think Live presence checks
        self._uncommitted_audio_bytes = 0  # appended since the last commit (ForceEndTurn)

    # ------------------------------------------------------------------ inputs

    def start(self, now: float) -> list[Action]:
        """P2.1: the Welcome, sent the moment the client is accepted."""
        self._client(dg.Welcome(request_id=self.connection_id))
        return self._flush()

    def client_text(self, text: str, now: float) -> list[Action]:
        """A text frame from the client: one JSON message (P1.1)."""
        try:
            data = json.loads(text)
        except (ValueError, RecursionError):  # RecursionError: nesting deeper than the parser's stack
            self._error("INVALID_MESSAGE", "message is not valid JSON")  # P5.10
            return self._flush()
        if not isinstance(data, dict):
            self._error("INVALID_MESSAGE", "message must be a JSON object")
            return self._flush()
        message_type = data.get("type")
        cls = dg.CLIENT_MESSAGE_TYPES.get(message_type) if isinstance(message_type, str) else None
        if cls is None:
            self._error("UNKNOWN_MESSAGE_TYPE", f"unknown or unsupported message type {message_type!r}")
            return self._flush()
        try:
            message = structure(data, cls)
        except MessageError as error:
            code = "INVALID_SETTINGS" if cls is dg.Settings else "INVALID_MESSAGE"
            self._error(code, f"{message_type}: {error.path.replace('$.', '')} {error.problem}")
            return self._flush()

        if isinstance(message, dg.KeepAlive):
            pass  # P5.8
        elif isinstance(message, dg.Settings) and self._plan is None:
            self._on_first_settings(message)
        elif not self.ready:
            self._hold(message, len(text))
        else:
            self._dispatch(message, now)
        return self._flush()

    def client_audio(self, data: bytes, now: float) -> list[Action]:
        """A binary frame from the client: microphone audio (P5.9)."""
        if not self.ready:
            self._hold(data, len(data))
        else:
            self._append_audio(data)
        return self._flush()

    def upstream_text(self, text: str, now: float) -> list[Action]:
        """One upstream server event (P6)."""
        try:
            # orjson: about a third of json's cost on the 50-a-second audio deltas.
            event = orjson.loads(text)
            event_type = event["type"]
            if not isinstance(event_type, str):
                raise TypeError("type is not a string")  # a list or object would not even hash
        except (ValueError, TypeError, KeyError, RecursionError):
            # P6.3: logged and dropped; never kills the connection.
            self.log.warning("dropped upstream frame that is not a JSON event", extra={"direction": "upstream"})
            return self._flush()
        handler = _UPSTREAM_HANDLERS.get(event_type)
        if handler is None:
            self._forward_untranslated(event)  # __customFromThinkProvider, when switched on
            if event_type in oa.KNOWN_SERVER_EVENTS:
                self.log.debug("upstream event ignored", extra={"message_type": event_type})
            elif event_type not in self._unknown_types:
                self._unknown_types.add(event_type)
                self.log.warning("unknown upstream event type", extra={"message_type": event_type})
            return self._flush()
        model_type, method = handler
        try:
            payload = structure(event, model_type) if model_type is not None else event
        except MessageError as error:
            self.log.warning(
                "dropped malformed upstream event",
                extra={"message_type": event_type, "detail": f"{error.path} {error.problem}"},
            )
            return self._flush()
        method(self, payload, now)
        return self._flush()

    def upstream_closed(self, code: int | None, reason: str | None, now: float) -> list[Action]:
        """P2.4: the upstream closed; close the client promptly."""
        if code == 1000:
            self._close(1000, "upstream closed the session")
        else:
            self._close(1011, f"upstream closed abnormally ({code if code is not None else 'no code'})")
        return self._flush()

    def upstream_failed(self, status: int | None, description: str, now: float) -> list[Action]:
        """P2.3: the upstream could not be reached; `description` must hold no secret."""
        if status in (401, 403):
            self._error("UPSTREAM_UNAUTHORIZED", f"the upstream refused the proxy's credentials (HTTP {status})")
            self._close(1008, "upstream unauthorized")
        else:
            self._error("UPSTREAM_UNAVAILABLE", f"cannot reach the upstream: {description}")
            self._close(1011, "upstream unavailable")
        return self._flush()

    def timer_fired(self, name: str, now: float) -> list[Action]:
        if name == FUNCTION_CALL_TIMER:
            self._function_call_deadline(now)
        elif name == UPDATE_TIMER:
            self._update_deadline(now)
        elif name == PRESENCE_TIMER:
            self._presence_check_due(now)
        return self._flush()

    def going_away(self) -> list[Action]:
        """P2.6: the server is shutting down and the grace has run out."""
        self._close(1001, "server shutting down")
        return self._flush()

    # ----------------------------------------------------------- client side

    def _dispatch(self, message: Any, now: float) -> None:
        if isinstance(message, bytes):
            self._append_audio(message)
        elif isinstance(message, dg.Settings):
            self._client(dg.SettingsApplied())  # P3.1: a later Settings sends nothing upstream
        elif isinstance(message, dg.InjectUserMessage):
            self._inject_user_message(message, now)
        elif isinstance(message, dg.FunctionCallResponse):
            if not self._answer_refused(message):
                self._function_call_response(message, now)
                self._call_answered(message.id, message.content)
        elif isinstance(message, dg.InjectAgentMessage):
            self._inject_agent_message(message, now)
        elif isinstance(message, dg.UpdatePrompt):
            self._queue_update(Update(PROMPT, {}, append_prompt=message.prompt), now)
        elif isinstance(message, dg.UpdateSpeak):
            self._update_speak(message, now)
        elif isinstance(message, dg.UpdateThink):
            self._update_think(message, now)
        elif isinstance(message, dg.UpdateListen):
            self._update_listen(message, now)
        elif isinstance(message, dg.UpdateThinkLive):
            self._update_think_live(message, now)
        elif isinstance(message, dg.ForceEndTurn):
            self._force_end_turn(now)
        elif isinstance(message, dg.CustomToThinkProvider):
            self._custom_to_think_provider(message)

    def _append_audio(self, data: bytes) -> None:
        assert self._audio_in is not None
        audio = self._audio_in.feed(data)
        self._uncommitted_audio_bytes += len(audio)
        # P1.3: split anything that would exceed the per-append limit.
        for start in range(0, len(audio), MAX_APPEND_AUDIO_BYTES):
            self._upstream(oa.InputAudioBufferAppend(event_id=self._new_id("e"), audio=audio[start : start + MAX_APPEND_AUDIO_BYTES]))

    def _inject_user_message(self, message: dg.InjectUserMessage, now: float) -> None:
        """P5.1: item, echo at once, response.create only after the upstream has the item."""
        if not message.content.strip():
            self._error("INVALID_MESSAGE", "InjectUserMessage: content must be a non-empty string")
            return
        item_id = self._new_id("i")
        self._upstream(
            oa.ConversationItemCreate(
                event_id=self._new_id("e"),
                item=oa.MessageItem(
                    id=item_id, role="user", content=(oa.ContentPart(type="input_text", text=message.content),)
                ),
            )
        )
        self._client(dg.ConversationText(role="user", content=message.content))
        self._awaiting_ack[item_id] = now
        self._user_active()

    def _inject_agent_message(self, message: dg.InjectAgentMessage, now: float) -> None:
        """P5.3: make the agent say `message`, by behaviour."""
        behavior = message.behavior or "default"
        if behavior not in ("default", "queue", "interrupt"):
            self._error("INVALID_MESSAGE", f"InjectAgentMessage: behavior {behavior!r} is not default, queue or interrupt")
            return
        if message.is_dynamic:
            # The model writes the line: a plain response on the session's own
            # instructions, so it stays in the agent's voice and context.
            request = ResponseRequest(AGENT, message="(dynamic)")
        elif message.message is None or not message.message.strip():
            self._error("INVALID_MESSAGE", "InjectAgentMessage: message must be a non-empty string (or is_dynamic true)")
            return
        else:
            request = ResponseRequest(AGENT, instructions=SAY_VERBATIM.format(message=message.message), message=message.message)
        busy = self._response_active or bool(self._response_queue)
        if behavior == "default":
            if self._user_speaking or busy:
                self._client(dg.InjectionRefused(message=message.message or ""))
                return
            self._request_response(request, now)
        elif behavior == "queue":
            self._request_response(request, now)
        else:  # interrupt: cancel what is speaking, then speak first (never two at once)
            if self._response is not None:
                self._upstream(oa.ResponseCancel(event_id=self._new_id("e"), response_id=self._response.id))
            self._response_queue.appendleft(request)
            self._pump(now)

    # -------------------------------------------------------------- responses

    @property
    def _response_active(self) -> bool:
        return self._response is not None or self._requested is not None

    def _request_response(self, request: ResponseRequest, now: float) -> None:
        self._response_queue.append(request)
        self._pump(now)

    def _pump(self, now: float) -> None:
        """Start what was waiting for the current response to end (P5.1, P5.3, P5.7)."""
        if self._response_active or self.closed:
            return
        if self._pending_update is None and self._updates:
            self._start_update(self._updates.popleft(), now)
        if self._response_queue and not self._response_active:
            self._send_response_create(self._response_queue.popleft(), now)

    def _send_response_create(self, request: ResponseRequest, now: float) -> None:
        request.event_id = self._new_id("e")
        request.sent_at = now  # P6.4: the turn ends when the proxy asks for the response
        params = None
        if request.instructions is not None or request.out_of_band:
            params = oa.ResponseParams(
                instructions=request.instructions,
                conversation="none" if request.out_of_band else None,
                metadata={"proxy_request": request.event_id},
            )
        self._upstream(oa.ResponseCreate(event_id=request.event_id, response=params))
        self._requested = request

    def _end_response(self, response: ActiveResponse, now: float) -> None:
        self._flush_response_audio(response)
        self._client(dg.AgentAudioDone())  # exactly once per response (P6)
        self._response = None
        latency, self._latency = self._latency, None
        if latency is not None and latency.first_token_at is not None:
            # After each agent turn; a response that produced nothing was no turn.
            self._client(latency.report())
        # Think Live presence checks count from when the client has played it all.
        playback_ends = now
        if response.first_audio_at is not None and not response.interrupted:
            playback_ends = max(now, response.first_audio_at + response.upstream_audio_bytes / self._output_format.upstream_bytes_per_ms / 1000)
        self._arm_presence_check(playback_ends)
        # P6.1 pairs text and transcript within one response (response.done
        # comes after both), so the parts seen need not outlive it: without
        # this the set grows for as long as the connection lives.
        self._texts_sent.clear()

    def _flush_response_audio(self, response: ActiveResponse) -> None:
        if response.audio_flushed:
            return
        response.audio_flushed = True
        if response.interrupted:
            return
        tail = response.output.flush()
        if tail:
            self._out.append(ToClientAudio(tail))

    # ---------------------------------------------------------- upstream side

    def _on_session_updated(self, event: oa.SessionUpdated, now: float) -> None:
        if not self.ready:
            if self._settings_event_id is None:
                return  # not ours: no Settings has been sent yet
            self._become_ready(now)
        elif self._pending_update is not None:
            self._finish_update(now)

    def _on_item_acknowledged(self, event: oa.ItemEvent, now: float) -> None:
        # P5.1: created, added or done, whichever comes first; then exactly once.
        if event.item.id is not None and self._awaiting_ack.pop(event.item.id, None) is not None:
            self._request_response(ResponseRequest(USER), now)

    def _on_response_created(self, event: oa.ResponseEvent, now: float) -> None:
        request = self._requested
        metadata = event.response.metadata or {}
        ours = request is not None and (
            metadata.get("proxy_request") == request.event_id or "proxy_request" not in metadata
        )
        if ours:
            assert request is not None and request.sent_at is not None
            self._requested = None
            kind, turn_end, out_of_band = request.kind, request.sent_at, request.out_of_band
        else:
            # Created by the upstream's own turn detection: the turn ended at speech_stopped.
            kind, turn_end, out_of_band = VOICE, self._speech_stopped_at or now, False
        if self._response is not None:
            self.log.warning("response.created while another response is active", extra={"response_id": event.response.id})
        self._response = ActiveResponse(
            id=event.response.id,
            kind=kind,
            turn_end=turn_end,
            created_at=now,
            output=OutboundStream(self._output_format),
            out_of_band=out_of_band,
            request=request if ours else None,
        )
        self._latency = TurnLatency(turn_end=turn_end)
        stopped = self._speech_stopped_at
        if kind == VOICE and stopped is not None:
            self._latency.speech_stopped_at = stopped
            if self._transcript_at is not None and self._transcript_at >= stopped:
                self._latency.transcript_at = self._transcript_at
        if self._presence is not None:
            self._out.append(CancelTimer(PRESENCE_TIMER))
        self._client(dg.AgentThinking(content=""))

    def _on_audio_delta(self, event: dict[str, Any], now: float) -> None:
        response = self._response
        if response is None or event.get("response_id") != response.id:
            return
        if response.interrupted:
            return  # P7: every later delta of an interrupted response is dropped
        try:
            audio = binascii.a2b_base64(event["delta"])
        except (KeyError, TypeError, binascii.Error):
            self.log.warning("dropped audio delta that is not base64", extra={"response_id": response.id})
            return
        if response.first_audio_at is None:
            response.first_audio_at = now
            if self._latency is not None:
                self._latency.audio(now)
            response.audio_item_id = event.get("item_id")
            response.audio_content_index = event.get("content_index", 0)
            ttt = max(0.0, response.created_at - response.turn_end)
            tts = max(0.0, now - response.created_at)
            self._client(
                dg.AgentStartedSpeaking(total_latency=round(ttt + tts, 4), tts_latency=round(tts, 4), ttt_latency=round(ttt, 4))
            )
            # An out-of-band response's item is not in the conversation, so
            # there is nothing to truncate (P3.5, P7).
            if response.audio_item_id is not None and not response.out_of_band:
                self._last_audio = AudioTrack(
                    item_id=response.audio_item_id,
                    content_index=response.audio_content_index,
                    first_audio_at=now,
                    upstream_audio_bytes=0,
                    bytes_per_ms=self._output_format.upstream_bytes_per_ms,
                )
        response.upstream_audio_bytes += len(audio)
        if self._last_audio is not None and self._last_audio.item_id == response.audio_item_id:
            self._last_audio.upstream_audio_bytes = response.upstream_audio_bytes
        converted = response.output.feed(audio)
        if converted:
            self._out.append(ToClientAudio(converted))

    def _on_audio_done(self, event: oa.OutputAudioDone, now: float) -> None:
        if self._response is not None and event.response_id == self._response.id:
            self._flush_response_audio(self._response)

    def _on_transcript_done(self, event: oa.TranscriptDone, now: float) -> None:
        self._assistant_text(event.response_id, event.item_id, event.content_index, event.transcript)

    def _on_text_done(self, event: oa.TextDone, now: float) -> None:
        self._assistant_text(event.response_id, event.item_id, event.content_index, event.text)

    def _assistant_text(self, response_id: str, item_id: str, content_index: int, text: str) -> None:
        response = self._response
        if response is not None and response.id == response_id and response.out_of_band:
            return  # P3.5: the spoken greeting was already sent as ConversationText
        key = (item_id, content_index)
        if key in self._texts_sent:
            return  # P6.1: one ConversationText per content part
        self._texts_sent.add(key)
        self._client(dg.ConversationText(role="assistant", content=text))

    def _on_response_done(self, event: oa.ResponseEvent, now: float) -> None:
        response = self._response
        if response is None or response.id != event.response.id:
            if self._requested is not None and event.response.metadata and (
                event.response.metadata.get("proxy_request") == self._requested.event_id
            ):
                self._requested = None  # ended before we saw it begin
            self.log.debug("response.done for a response not active", extra={"response_id": event.response.id})
        else:
            self._end_response(response, now)
        if event.response.status == "failed":
            details = event.response.status_details
            error = details.error if details is not None else None
            code = (error.code or error.type) if error is not None else None
            message = error.message if error is not None and error.message else "the response failed"
            self._error(code or "response_failed", message)
        if event.response.status == "cancelled":
            self._calls_cancelled(event.response.id)  # cancelled or interrupted: no answers wanted
        if self._calls is not None and self._calls.response_id == event.response.id:
            self._calls.response_done = True
            if self._calls.complete:
                self._follow_up_calls(now)
        self._pump(now)

    def _on_speech_started(self, event: oa.SpeechStarted, now: float) -> None:
        self._client(dg.UserStartedSpeaking())  # P7: first
        self._user_speaking = True
        self._user_active()
        track = self._last_audio
        response = self._response
        flowing = response is not None and response.first_audio_at is not None and not response.interrupted
        if flowing:
            assert response is not None
            response.interrupted = True
        if track is not None and not track.truncated and (flowing or track.still_playing(now)):
            track.truncated = True
            self._upstream(
                oa.ConversationItemTruncate(
                    event_id=self._new_id("e"),
                    item_id=track.item_id,
                    content_index=track.content_index,
                    audio_end_ms=track.heard_ms(now),
                )
            )

    def _on_speech_stopped(self, event: oa.SpeechStopped, now: float) -> None:
        self._user_speaking = False
        self._speech_stopped_at = now
        self._client(dg.UtteranceEnd(channel=(0, 1), last_word_end=event.audio_end_ms / 1000))

    def _on_transcription(self, event: oa.TranscriptionCompleted, now: float) -> None:
        self._transcript_at = now
        latency = self._latency
        if latency is not None and latency.speech_stopped_at is not None and latency.transcript_at is None:
            latency.transcript_at = now
        self._client(dg.ConversationText(role="user", content=event.transcript))

    def _on_text_delta(self, event: dict[str, Any], now: float) -> None:
        # Transcript and text deltas: only the first of a response matters (LatencyReport).
        if self._latency is not None and self._latency.first_text_at is None:
            self._latency.text(now)

    def _on_arguments_delta(self, event: dict[str, Any], now: float) -> None:
        if self._latency is not None and self._latency.first_tool_at is None:
            self._latency.tool(now)

    def _on_buffer_committed(self, event: dict[str, Any], now: float) -> None:
        # The upstream's VAD ended the turn (or the buffer was cleared):
        # ForceEndTurn counts audio from here.
        self._uncommitted_audio_bytes = 0

    def _on_error(self, event: oa.ErrorEvent, now: float) -> None:
        error = event.error
        if self._pending_update is not None and error.event_id == self._pending_update.event_id:
            self._finish_update(now, error=error)
            return
        if self._settings_event_id is not None and error.event_id == self._settings_event_id:
            # The first session.update was refused: the client may send a corrected Settings.
            self._settings_event_id = None
            self._plan = None
            self._error(error.code or error.type, f"Settings rejected by the upstream: {error.message}")
            return
        if error.code == ACTIVE_RESPONSE_CODE:
            # Lost a race with the upstream's own turn detection: ask again
            # once the response that won is done.
            request = self._requested
            active = self._response
            if request is not None and error.event_id == request.event_id:
                self._requested = None
                self._response_queue.appendleft(request)
            elif active is not None and active.request is not None and error.event_id == active.request.event_id:
                # The winner came without our metadata and was taken for ours.
                self._response_queue.appendleft(active.request)
                active.request, active.kind = None, VOICE
                active.turn_end = self._speech_stopped_at or active.created_at
            self._client(dg.Warning(description=error.message, code=error.code))
            return
        self._error(error.code or error.type, error.message)

    # -------------------------------------------------------------- helpers

    def _new_id(self, kind: str) -> str:
        # P1.6: at most 32 characters: "px" + 12 hex + kind + counter.
        self._next_id += 1
        return f"{self._id_prefix}{kind}{self._next_id}"

    def _upstream_session_update(self, session: dict[str, Any]) -> str:
        event_id = self._new_id("e")
        self._upstream(oa.SessionUpdate(event_id=event_id, session=session))
        return event_id

    def _upstream(self, event: oa.ClientEvent) -> None:
        if not self.closed:
            self._out.append(ToUpstream(event))

    def _client(self, message: dg.ServerMessage) -> None:
        if not self.closed:
            self._out.append(ToClient(message))
            if self._report_history and type(message) is dg.ConversationText:
                # Settings.flags.history: every message, in conversation order.
                self._out.append(ToClient(dg.HistoryText(role=message.role, content=message.content)))

    def _error(self, code: str, description: str) -> None:
        self.log.info("error sent to client", extra={"error_code": code})
        self._client(dg.Error(description=description, code=code))

    def _close(self, code: int, reason: str) -> None:
        if not self.closed:
            self._out.append(CloseClient(code, reason))
            self.closed = True

    def _flush(self) -> list[Action]:
        out, self._out = self._out, []
        return out


_UPSTREAM_HANDLERS: dict[str, tuple[type | None, Any]] = {
    "session.updated": (oa.SessionUpdated, Session._on_session_updated),
    "conversation.item.created": (oa.ItemEvent, Session._on_item_acknowledged),
    "conversation.item.added": (oa.ItemEvent, Session._on_item_acknowledged),
    "conversation.item.done": (oa.ItemEvent, Session._on_item_acknowledged),
    "response.created": (oa.ResponseEvent, Session._on_response_created),
    # The hot path: read straight from the parsed dict, no model.
    "response.output_audio.delta": (None, Session._on_audio_delta),
    "response.output_audio.done": (oa.OutputAudioDone, Session._on_audio_done),
    "response.output_audio_transcript.done": (oa.TranscriptDone, Session._on_transcript_done),
    "response.output_text.done": (oa.TextDone, Session._on_text_done),
    "response.output_text.delta": (None, Session._on_text_delta),
    "response.output_audio_transcript.delta": (None, Session._on_text_delta),
    "response.function_call_arguments.delta": (None, Session._on_arguments_delta),
    "input_audio_buffer.committed": (None, Session._on_buffer_committed),
    "input_audio_buffer.cleared": (None, Session._on_buffer_committed),
    "response.function_call_arguments.done": (oa.FunctionCallArgumentsDone, Session._on_function_call),
    "response.done": (oa.ResponseEvent, Session._on_response_done),
    "input_audio_buffer.speech_started": (oa.SpeechStarted, Session._on_speech_started),
    "input_audio_buffer.speech_stopped": (oa.SpeechStopped, Session._on_speech_stopped),
    "conversation.item.input_audio_transcription.completed": (oa.TranscriptionCompleted, Session._on_transcription),
    "error": (oa.ErrorEvent, Session._on_error),
}
