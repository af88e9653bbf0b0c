"""The translation state machine: Deepgram Voice Agent V1 <-> OpenAI Realtime GA.

`Session.handle(event, now)` is fed what happened (an event of `events`)
together with the time on the Trio clock, and returns the actions to take.
It never touches a socket or reads a clock, so every rule of PROTOCOL.md
can be tested by feeding it events. The Trio layer (`proxy.server`) owns
the one task that calls it.

The session is a coordinator of small parts, each with its own state and a
declared interface: `Setup` (P3 phases and the hold), `Responses` (one
response at a time), `LiveUpdates` (P5.4-P5.7), `FunctionCalls` (P5.2),
`UserMessages` (P5.1), `AgentOutput` (audio, text, barge-in) and
`TranscriptOrder` (question before answer), all writing to one `Outbox` and
entering what they wait for in one `Waits` map. After every event `_advance` starts whatever
the new state allows (the next update, the next response), so no handler
has to remember to.

Extending it: a new input is a class in `events` and a row in
`_EVENT_HANDLERS`; a new client message a branch of `_dispatch` routed to
the part that owns it; a new upstream event a row in `_UPSTREAM_HANDLERS`;
a new phase a member and rows in `states`; a new wait a kind in `waits`
(and, if the upstream names it by code, a row in `waits.CODE_NAMES`).
"""

from __future__ import annotations

import copy
import logging
from typing import Any, Callable

import orjson

from ..protocol import deepgram as dg
from ..protocol import openai as oa
from ..protocol.converter import MessageError, structure
from .client_text import Refusal, parse_client_text
from ..redact import Redactor
from .actions import Action
from .audio import AUDIO_PAUSE_S, InboundStream
from .calls import FUNCTION_CALL_TIMER, FunctionCalls
from .captions import Captions
from .custom_events import CustomEvents
from .events import (
    ClientAudio,
    ClientClosed,
    ClientText,
    Event,
    FunctionResult,
    GoingAway,
    Opened,
    TimerFired,
    UpstreamClosed,
    UpstreamFailed,
    UpstreamText,
)
from .messages import ITEM_ACK_TIMER, UserMessages
from .options import SessionOptions
from .outbox import Outbox
from .renewal import (
    AGE_TIMER,
    DEADLINE_TIMER,
    EXPIRED,
    EXPIRED_CODE,
    MAX_DURATION_CODE,
    PROACTIVE,
    RETRY_TIMER,
    RenewalBudget,
    Renewal,
)
from .responses import ACTIVE_RESPONSE_CODE, RESPONSE_TIMER, Responses
from .setup import SAY_VERBATIM, Setup, history_items
from .functions import ServerFunctions
from .latency import TurnLatencies
from .speech import AgentOutput
from .states import SetupPhase
from .think_live import PRESENCE_TIMER, ThinkLive
from .transcripts import TRANSCRIPT_TIMER, TranscriptOrder
from .turn_control import TurnControl
from .turns import AGENT, FUNCTION, GREETING, USER, VOICE, ActiveResponse, Applied, ResponseRequest
from .updates import UPDATE_TIMER, LiveUpdates
from .waits import CANCEL, ITEM, RENEW, RESPONSE, SETTINGS, UPDATE, Waits

# P6 error row: our response.cancel reached a response that had just ended.
CANCEL_NOT_ACTIVE_CODE = "response_cancel_not_active"

# P1.3: one append carries at most 15 MiB of base64, i.e. 15 MiB * 3/4 of
# audio; kept even so a PCM16 sample is never split across two appends.
MAX_APPEND_AUDIO_BYTES = (15 * 1024 * 1024 // 4) * 3 // 2 * 2

# P5.9: armed while the input resampler may hold a tail (audio.AUDIO_PAUSE_S).
AUDIO_PAUSE_TIMER = "audio_pause"


class Session:
    """One client connection's translation state. Feed it events; act on what it returns."""

    def __init__(self, connection_id: str, options: SessionOptions, log: logging.LoggerAdapter | None = None):
        self.connection_id = connection_id
        self.options = options
        self.log = log or _SessionLog(logging.getLogger("proxy.session"), {})
        self.out = Outbox(connection_id, Redactor(options.secrets), self.log)
        self.waits = Waits()
        self.applied = Applied()
        self.setup = Setup(
            self.out,
            self.waits,
            max_held_frames=options.max_held_frames,
            max_held_bytes=options.max_held_bytes,
            turn_detection=options.turn_detection,
            transcription_model=options.transcription_model,
            function_hosts=options.function_hosts,
        )
        self.responses = Responses(
            self.out, self.waits, self.log, max_queued=options.max_queued_responses, timeout_s=options.response_timeout_s
        )
        self.updates = LiveUpdates(
            self.out,
            self.waits,
            self.applied,
            timeout_s=options.update_timeout_s,
            max_queued=options.max_queued_updates,
            function_hosts=options.function_hosts,
            transcription_model=options.transcription_model,
        )
        self.calls = FunctionCalls(self.out, self.log, deadline_s=options.function_call_deadline_s)
        self.messages = UserMessages(
            self.out, self.waits, self.log, ack_timeout_s=options.item_ack_timeout_s, max_pending=options.max_pending_messages
        )

        self.speech = AgentOutput(self.out, self.log)
        self.renewal = Renewal(
            enabled=options.renewal,
            renew_after_s=options.renew_after_s,
            max_renewals=options.max_renewals,
            window_s=options.renewal_window_s,
            history_items=options.renewal_history_items,
            # A new upstream must be connected and configured within this.
            deadline_s=options.upstream_connect_timeout_s + options.update_timeout_s,
        )
        if options.renewal:
            self.out.conversation = self.renewal.record
        self.transcripts = TranscriptOrder(self.out, self.log, wait_s=options.transcript_wait_s)
        # Deepgram V1 as of SDK 7.17 (README "Deepgram V1 coverage").
        self.functions = ServerFunctions(self.out, self.log, self.applied)
        self.think_live = ThinkLive(self.out)
        self.turns = TurnControl(self.out, self.log, turn_detection=options.turn_detection)
        self.custom = CustomEvents(
            self.out, allowed=options.custom_event_types, forward_untranslated=options.forward_untranslated
        )
        self.latency = TurnLatencies()

        self._audio_in: InboundStream | None = None
        self._user_speaking = False
        self._speech_stopped_at: float | None = None
        self._unknown_types: set[str] = set()
        self.captions = Captions(connection_id, options.transcription_model) if options.captions else None

    @property
    def ready(self) -> bool:
        return self.setup.ready

    @property
    def closed(self) -> bool:
        return self.out.closed

    # ------------------------------------------------------------ entry point

    def handle(self, event: Event, now: float) -> list[Action]:
        """Feed one event; returns what to do, in order."""
        self.out.now = now
        _EVENT_HANDLERS[type(event)](self, event, now)
        self._advance(now)
        return self.out.take()

    def _advance(self, now: float) -> None:
        """Start what the state now allows (P5.1, P5.3, P5.7): the next update, the next response."""
        if self.out.closed or not self.setup.ready or self.responses.busy:
            return
        self.updates.start_next(now)
        self.responses.start_next(now)
        if self.renewal.due and self._idle():
            self._renew(PROACTIVE, now)

    def _idle(self) -> bool:
        """Nothing under way a renewal would cut: no response, no speech, no update, no call, no item."""
        return not (
            self.responses.busy
            or self.responses.queued
            or self._user_speaking
            or self.updates.pending
            or self.updates.queued
            or self.calls.asking_response is not None
            or self.waits.count(ITEM)
        )

    # ----------------------------------------------------------------- events

    def _opened(self, event: Opened, now: float) -> None:
        self.out.client(dg.Welcome(request_id=self.connection_id))  # P2.1
        self._arm_renewal_age(now)  # the upstream connect starts now

    def _client_text(self, event: ClientText, now: float) -> None:
        """P1.1: one JSON message."""
        text = event.text
        message = parse_client_text(text)
        if type(message) is Refusal:
            self.out.error(message.code, message.description)  # P5.10
            return

        phase = self.setup.phase
        if isinstance(message, dg.KeepAlive):
            pass  # P5.8
        elif isinstance(message, dg.Settings) and phase is SetupPhase.AWAITING_SETTINGS:
            self.setup.settings(message, now)
            plan = self.setup.plan
            if plan is not None:
                self._audio_in = InboundStream(plan.input_format)
                self.speech.output_format = plan.output_format
                self.updates.agent_language = plan.agent_language
                if plan.think_live is not None:
                    self.think_live.configure(plan.think_live)
        elif phase is not SetupPhase.READY:
            self.setup.hold(message, len(text))
        else:
            self._dispatch(message, now)

    def _client_audio(self, event: ClientAudio, now: float) -> None:
        """P5.9: microphone audio."""
        if not self.setup.ready:
            self.setup.hold(event.data, len(event.data))
        else:
            self._append_audio(event.data, now)

    def _upstream_text(self, event: UpstreamText, now: float) -> None:
        """One upstream server event (P6)."""
        try:
            # orjson: about a third of json's cost on the 50-a-second audio deltas.
            data = orjson.loads(event.text)
            event_type = data["type"]
            if not isinstance(event_type, str):
                raise TypeError("type is not a string")  # a list or object would not even hash
        except (ValueError, TypeError, KeyError, RecursionError):
            # P6.3: logged and dropped; never kills the connection.
            self.log.warning("dropped upstream frame that is not a JSON event", extra={"direction": "upstream"})
            return
        handler = _UPSTREAM_HANDLERS.get(event_type)
        if handler is None:
            self.custom.from_upstream(data)  # __customFromThinkProvider, when switched on
            if event_type in oa.KNOWN_SERVER_EVENTS:
                self.log.debug("upstream event ignored", extra={"message_type": event_type})
            elif event_type not in self._unknown_types:
                self._unknown_types.add(event_type)
                self.log.warning("unknown upstream event type", extra={"message_type": event_type})
            return
        model_type, method = handler
        try:
            payload = structure(data, model_type) if model_type is not None else data
        except MessageError as error:
            self.log.warning(
                "dropped malformed upstream event",
                extra={"message_type": event_type, "detail": f"{error.path} {error.problem}"},
            )
            if event_type == "response.done":
                self._malformed_response_done(data, now)
            return
        method(self, payload, now)

    def _upstream_closed(self, event: UpstreamClosed, now: float) -> None:
        """P2.4: the upstream closed; renew it (README "Session renewal") or close the client promptly."""
        cause = self.renewal.cause_of_close(event.code, event.reason)
        phase = self.setup.phase
        if cause is None:
            self._close(1000, "upstream closed the session")
        elif self.renewal.enabled and phase is SetupPhase.READY:
            self._renew(cause, now, code=event.code, reason=event.reason)
        elif self.renewal.enabled and phase is SetupPhase.RENEWING:
            self._renewal_failed(f"the new upstream closed ({event.code})", now)
        else:
            self._end_with_upstream(cause, event.code, event.reason)

    def _upstream_failed(self, event: UpstreamFailed, now: float) -> None:
        """P2.3: the upstream could not be reached."""
        if self.setup.phase is SetupPhase.RENEWING and event.status not in (401, 403):
            self._renewal_failed(event.description, now)
            return
        if event.status in (401, 403):
            self.out.error("UPSTREAM_UNAUTHORIZED", f"the upstream refused the proxy's credentials (HTTP {event.status})")
            self._close(1008, "upstream unauthorized")
        else:
            self.out.error("UPSTREAM_UNAVAILABLE", f"cannot reach the upstream: {event.description}")
            self._close(1011, "upstream unavailable")

    def _timer_fired(self, event: TimerFired, now: float) -> None:
        if not self.out.timers.fired(event.name, event.token):
            self.log.debug("stale timer ignored", extra={"timer": event.name})
            return
        if event.name == AUDIO_PAUSE_TIMER:
            self._audio_pause_deadline(now)
        elif event.name == UPDATE_TIMER:
            self.updates.deadline()
        elif event.name == RESPONSE_TIMER:
            self.responses.deadline()
        elif event.name == FUNCTION_CALL_TIMER:
            asking = self.calls.asking_response
            if self.calls.deadline():
                active = self.responses.active
                if active is not None and active.id == asking:
                    self._end_response(self.responses.done(None), now)
                self._request(ResponseRequest(FUNCTION))
        elif event.name.startswith(ITEM_ACK_TIMER):
            if self.messages.deadline(event.name):
                self._request(ResponseRequest(USER))
        elif event.name == AGE_TIMER:
            self.renewal.due = True  # at the next idle moment (`_advance`)
        elif event.name == RETRY_TIMER:
            self._connect_renewed(now)
        elif event.name == DEADLINE_TIMER:
            self._renewal_failed("the new upstream was not configured in time", now)
        elif event.name.startswith(TRANSCRIPT_TIMER):
            self.transcripts.deadline(event.name)
        elif event.name == PRESENCE_TIMER:
            quiet = not (
                self.responses.busy or self.responses.queued or self._user_speaking or self.updates.pending
                or self.turns.holding_turn  # push-to-talk: no VAD says the user speaks, the audio does
            )
            request = self.think_live.due(quiet=quiet)
            if request is not None:
                self._request(request)

    def _function_result(self, event: FunctionResult, now: float) -> None:
        """A server-side function's output: answered like a client's FunctionCallResponse."""
        answer = self.functions.result(event.call_id, event.output, outstanding=self.calls.outstanding(event.call_id))
        if answer is not None:
            self._answer(answer, now)

    def _answer(self, answer: dg.FunctionCallResponse, now: float) -> None:
        self.renewal.record.function_output(answer.id, answer.content)
        due = self.calls.answered(answer, now)
        self.functions.answered(answer.id, answer.content)
        if due:
            self._request(ResponseRequest(FUNCTION))

    def _client_closed(self, event: ClientClosed, now: float) -> None:
        if self.setup.ready:  # not to a renewed upstream that is not configured yet (P3.6)
            self._flush_input_audio()  # P5.9: the end of what the user said still goes upstream

    def _going_away(self, event: GoingAway, now: float) -> None:
        self._close(1001, "server shutting down")  # P2.6

    # ----------------------------------------------------------- client side

    def _dispatch(self, message: Any, now: float) -> None:
        if isinstance(message, bytes):
            self._append_audio(message, now)
        elif isinstance(message, dg.Settings):
            self.out.client(dg.SettingsApplied())  # P3.1: a later Settings sends nothing upstream
        elif isinstance(message, dg.InjectUserMessage):
            self.messages.inject(message, now)
            self.think_live.user_active()
        elif isinstance(message, dg.FunctionCallResponse):
            if not self.functions.refuse(message):
                self._answer(message, now)
        elif isinstance(message, dg.InjectAgentMessage):
            self._inject_agent_message(message, now)
        elif isinstance(message, dg.UpdatePrompt):
            self.updates.prompt(message)
        elif isinstance(message, dg.UpdateSpeak):
            self.updates.speak(message)
        elif isinstance(message, dg.UpdateThink):
            self.updates.think(message)
        elif isinstance(message, dg.UpdateListen):
            self.updates.listen(message)
        elif isinstance(message, dg.UpdateThinkLive):
            self.think_live.update(message)
        elif isinstance(message, dg.ForceEndTurn):
            self._force_end_turn(now)
        elif isinstance(message, dg.CustomToThinkProvider):
            self.custom.to_upstream(message)
        self._advance(now)

    def _append_audio(self, data: bytes, now: float) -> None:
        stream = self._audio_in
        assert stream is not None
        # P5.9: one pause timer per burst of audio (armed by its first frame),
        # which re-arms itself from its own firing while audio keeps coming
        # (about every 120 ms for 20 ms frames), rather than one per frame.
        burst_starts = stream.holds_audio and not stream.pending
        audio = stream.feed(data, now)
        self.turns.appended(len(audio))
        # P1.3: split anything that would exceed the per-append limit.
        for start in range(0, len(audio), MAX_APPEND_AUDIO_BYTES):
            self.out.upstream(
                oa.InputAudioBufferAppend(event_id=self.out.new_id("e"), audio=audio[start : start + MAX_APPEND_AUDIO_BYTES])
            )
        if burst_starts:
            self.out.start_timer(AUDIO_PAUSE_TIMER, stream.pause_deadline)

    def _send_audio(self, audio: bytes) -> None:
        self.turns.appended(len(audio))
        for start in range(0, len(audio), MAX_APPEND_AUDIO_BYTES):
            self.out.upstream(
                oa.InputAudioBufferAppend(event_id=self.out.new_id("e"), audio=audio[start : start + MAX_APPEND_AUDIO_BYTES])
            )

    def _audio_pause_deadline(self, now: float) -> None:
        stream = self._audio_in
        if stream is None or not stream.pending:
            return  # flushed meanwhile
        if not self.setup.ready:
            # A renewal is under way: its new upstream takes no audio until it
            # is configured (P3.6). The tail waits; look again after a pause.
            self.out.start_timer(AUDIO_PAUSE_TIMER, now + AUDIO_PAUSE_S)
            return
        if stream.paused(now):
            self._flush_input_audio()
        else:
            self.out.start_timer(AUDIO_PAUSE_TIMER, stream.pause_deadline)

    def _flush_input_audio(self) -> None:
        """P5.9: send what the input resampler holds: at a pause, before a commit, at the end."""
        if self._audio_in is not None and self._audio_in.pending:
            self._send_audio(self._audio_in.flush())

    def _inject_agent_message(self, message: dg.InjectAgentMessage, now: float) -> None:
        """P5.3: make the agent say `message`, by behaviour."""
        behavior = message.behavior or "default"
        if behavior not in ("default", "queue", "interrupt"):
            self.out.error("INVALID_MESSAGE", f"InjectAgentMessage: behavior {behavior!r} is not default, queue or interrupt")
            return
        if message.is_dynamic:
            # The model writes the line: a plain response on the session's own
            # instructions, so it stays in the agent's voice and context.
            request = ResponseRequest(AGENT, message="(dynamic)")
        elif message.message is None or not message.message.strip():
            self.out.error("INVALID_MESSAGE", "InjectAgentMessage: message must be a non-empty string (or is_dynamic true)")
            return
        else:
            request = ResponseRequest(AGENT, instructions=SAY_VERBATIM.format(message=message.message), message=message.message)
        if behavior == "default":
            if self._user_speaking or self.responses.busy or self.responses.queued:
                self.out.client(dg.InjectionRefused(message=message.message or ""))
                return
            self._request(request)
        elif behavior == "queue":
            self._request(request)
        else:  # interrupt: cancel what is speaking, then speak first (never two at once)
            if self.responses.active is not None:
                self.responses.active.cancelled = True
                self._cancel(self.responses.active.id, now)
            self.responses.request(request, first=True)

    def _force_end_turn(self, now: float) -> None:
        assert self._audio_in is not None
        self._flush_input_audio()  # P5.9: the resampler's tail belongs to the turn being committed
        if self.turns.force_end(user_speaking=self._user_speaking, bytes_per_ms=self._audio_in.format.upstream_bytes_per_ms):
            self._user_speaking = False
            self._speech_stopped_at = now
            self.think_live.user_active()
            self._request(ResponseRequest(USER))

    def _request(self, request: ResponseRequest) -> None:
        self.responses.request(request)

    def _cancel(self, response_id: str, now: float) -> None:
        event_id = self.out.new_id("e")
        self.out.upstream(oa.ResponseCancel(event_id=event_id, response_id=response_id))
        self.waits.add(CANCEL, event_id, now, response_id)

    # ------------------------------------------------------------ setup (P3)

    def _on_session_updated(self, event: oa.SessionUpdated, now: float) -> None:
        phase = self.setup.phase
        if phase is SetupPhase.SETTINGS_SENT:
            self._become_ready(now)
        elif phase is SetupPhase.RENEWING:
            if self.waits.first(RENEW) is not None:
                self._renewed(now)
        elif phase is SetupPhase.READY:
            self.updates.acknowledged()
        # else: not ours, no Settings has been sent yet

    def _become_ready(self, now: float) -> None:
        """P3.3: SettingsApplied, context, greeting, then what was held."""
        plan, held = self.setup.accepted()
        self.applied.instructions = plan.instructions
        self.applied.tools = plan.tools
        self.applied.voice = plan.voice
        self.applied.server_functions = plan.server_functions
        self.out.report_history = plan.report_history
        self.out.client(dg.SettingsApplied())
        for entry in plan.history:  # P3.4
            self._keep_context(entry)
            for item in history_items(entry):
                self.out.upstream(oa.ConversationItemCreate(event_id=self.out.new_id("e"), item=item))
        if plan.greeting:  # P3.5
            self.out.upstream(
                oa.ConversationItemCreate(
                    event_id=self.out.new_id("e"),
                    item=oa.MessageItem(role="assistant", content=(oa.ContentPart(type="output_text", text=plan.greeting),)),
                )
            )
            self.out.client(dg.ConversationText(role="assistant", content=plan.greeting))
            if self.options.greeting == "speak":
                self._request(
                    ResponseRequest(
                        GREETING, instructions=SAY_VERBATIM.format(message=plan.greeting), out_of_band=True, message=plan.greeting
                    )
                )
                self._advance(now)
        for message in held:
            if self.out.closed:
                break
            self._dispatch(message, now)

    # ------------------------------------------------------ responses (P5, P6)

    def _on_item_acknowledged(self, event: oa.ItemEvent, now: float) -> None:
        # P5.1: created, added or done, whichever comes first; then exactly once.
        if self.messages.acknowledged(event.item.id):
            self._request(ResponseRequest(USER))

    def _on_response_created(self, event: oa.ResponseEvent, now: float) -> None:
        active = self.responses.created(
            event.response, now, speech_stopped_at=self._speech_stopped_at, output_format=self.speech.output_format
        )
        self.transcripts.response_created(event.response.id)
        self.latency.response_started(active.turn_end, spoken=active.kind == VOICE, speech_stopped_at=self._speech_stopped_at)
        self.think_live.agent_speaking()
        self.out.client(dg.AgentThinking(content=""))

    def _on_response_done(self, event: oa.ResponseEvent, now: float) -> None:
        response = event.response
        self._end_response(self.responses.done(response), now)
        self.transcripts.response_done(response.id)
        self._cancel_answered(response.id, response.status)
        if response.status == "failed":
            details = response.status_details
            error = details.error if details is not None else None
            code = (error.code or error.type) if error is not None else None
            message = error.message if error is not None and error.message else "the response failed"
            self.out.error(code or "response_failed", message)
        if response.status == "cancelled":
            # Cancelled or interrupted: its unanswered calls are not wanted any more.
            self.functions.cancelled(self.calls.cancelled(response.id))
        if self.calls.response_done(response.id):
            self._request(ResponseRequest(FUNCTION))

    def _malformed_response_done(self, data: dict[str, Any], now: float) -> None:
        """A response.done too malformed to model still ends its response: otherwise every later turn waits."""
        response = data.get("response")
        response_id = response.get("id") if isinstance(response, dict) else None
        active = self.responses.active
        if active is None or (isinstance(response_id, str) and response_id != active.id):
            return
        self._end_response(self.responses.done(None), now)
        self.transcripts.response_done(active.id)
        if self.calls.response_done(active.id):
            self._request(ResponseRequest(FUNCTION))

    def _cancel_answered(self, response_id: str, status: str | None) -> None:
        """Our response.cancel waits end with the response's done (or the error that follows it)."""
        for wait in list(self.waits.of_kind(CANCEL)):
            # A cancel of an earlier response whose error never came is forgotten
            # here, so the map stays as small as the responses in flight.
            if wait.subject != response_id or status == "cancelled":
                self.waits.discard(wait)

    def _end_response(self, response: ActiveResponse | None, now: float) -> None:
        if response is None:
            return
        self.speech.ended(response)
        report = self.latency.response_ended()
        if report is not None:
            self.out.client(report)  # after each agent turn
        # Think Live presence checks count from when the client has played it all.
        playback_ends = now
        if response.first_audio_at is not None and not response.interrupted:
            played_s = response.upstream_audio_bytes / self.speech.output_format.upstream_bytes_per_ms / 1000
            playback_ends = max(now, response.first_audio_at + played_s)
        self.think_live.agent_turn_ended(playback_ends)

    def _on_audio_delta(self, event: dict[str, Any], now: float) -> None:
        active = self.responses.active
        if active is not None and event.get("response_id") == active.id:
            if not active.interrupted:
                self.latency.audio(now)
            self.speech.audio_delta(event, active, now)

    def _on_audio_done(self, event: oa.OutputAudioDone, now: float) -> None:
        active = self.responses.active
        if active is not None and event.response_id == active.id:
            self.speech.audio_done(active)

    def _on_transcript_done(self, event: oa.TranscriptDone, now: float) -> None:
        self._assistant_text(event.response_id, event.item_id, event.content_index, event.transcript, now)

    def _on_text_done(self, event: oa.TextDone, now: float) -> None:
        self._assistant_text(event.response_id, event.item_id, event.content_index, event.text, now)

    def _assistant_text(self, response_id: str, item_id: str, content_index: int, text: str, now: float) -> None:
        message = self.speech.text(self.responses.active, response_id, item_id, content_index, text)
        if message is not None:
            self.transcripts.assistant_text(response_id, message, now)

    def _on_function_call(self, event: oa.FunctionCallArgumentsDone, now: float) -> None:
        active = self.responses.active
        if active is not None and active.id == event.response_id and active.cancelled:
            # A cancelled (barged-in) response's calls are not the client's to
            # run: the user moved on, and no follow-up will be asked for them.
            self.log.info("function call of a cancelled response dropped", extra={"call_id": event.call_id})
            return
        self.latency.tool(now)
        new_round = self.calls.requested(event, client_side=self.functions.client_side(event.name))
        self.functions.asked(event.call_id, event.name, event.arguments, new_round=new_round)

    def _on_text_delta(self, event: dict[str, Any], now: float) -> None:
        self.latency.text(now)  # text and transcript deltas: LatencyReport only

    def _on_arguments_delta(self, event: dict[str, Any], now: float) -> None:
        self.latency.tool(now)

    def _on_buffer_cleared(self, event: dict[str, Any], now: float) -> None:
        self.turns.cleared()  # ForceEndTurn counts audio from here

    # ------------------------------------------------------- the user's turn

    def _on_speech_started(self, event: oa.SpeechStarted, now: float) -> None:
        self.out.client(dg.UserStartedSpeaking())  # P7: first
        self._user_speaking = True
        if self.captions is not None:
            self.captions.speech_started(event.item_id, event.audio_start_ms)
        self.think_live.user_active()
        self.speech.barge_in(self.responses.active, now)

    def _on_speech_stopped(self, event: oa.SpeechStopped, now: float) -> None:
        self._user_speaking = False
        self._speech_stopped_at = now
        if self.captions is not None:
            self.captions.speech_stopped(event.item_id, event.audio_end_ms)
        self.out.client(dg.UtteranceEnd(channel=(0, 1), last_word_end=event.audio_end_ms / 1000))

    def _on_committed(self, event: oa.AudioCommitted, now: float) -> None:
        self.turns.committed()  # the upstream's VAD (or our ForceEndTurn) ended the turn
        self.transcripts.committed(event.item_id)

    def _on_transcription(self, event: oa.TranscriptionCompleted, now: float) -> None:
        self.latency.transcript(now)
        caption = self.captions.final(event.item_id, event.transcript) if self.captions is not None else None
        self.transcripts.transcribed(event.item_id, event.transcript, caption)

    def _on_transcription_delta(self, event: oa.TranscriptionDelta, now: float) -> None:
        if self.captions is not None:
            interim = self.captions.interim(event.item_id, event.delta)
            if interim is not None:
                self.out.client(interim)

    def _on_transcription_failed(self, event: oa.TranscriptionFailed, now: float) -> None:
        if self.captions is not None:
            self.captions.forget(event.item_id)
        detail = (event.error.message or event.error.code) if event.error is not None else None
        self.transcripts.failed(event.item_id, detail or "no reason given")

    # ---------------------------------------------------------------- errors

    def _on_error(self, event: oa.ErrorEvent, now: float) -> None:
        """P6 error row; which request it rejects is the rule in `waits`."""
        error = event.error
        if error.code == EXPIRED_CODE:
            # The time limit: the close follows. Renewed then, or the client is
            # told with the code its SDKs treat as an expected end.
            self.renewal.expiring = True
            self.renewal.expiry_message = error.message
            if not self.renewal.enabled:
                self._report_expiry(error.message)
            return
        if error.type == "server_error" and error.event_id is None:
            self.renewal.server_error = True  # a close often follows: renewal's cause
        wait = self.waits.match_error(error)
        kind = wait.kind if wait is not None else None
        if kind == RENEW:
            # The configuration the old upstream accepted: try another upstream, within the budget.
            self._renewal_failed(f"the new upstream refused the session configuration: {error.message}", now)
            return
        if kind == SETTINGS:
            self.setup.rejected(error)
        elif kind == UPDATE:
            assert wait is not None
            self.updates.rejected(wait, error)
        elif kind == ITEM:
            assert wait is not None
            self.messages.rejected(wait, error)
        elif kind == RESPONSE:
            assert wait is not None
            self.responses.rejected(wait, error)
            self._report(error)
        elif kind == CANCEL:
            if error.code == CANCEL_NOT_ACTIVE_CODE:
                # Our response.cancel crossed the response's own end: harmless.
                self.log.debug("response.cancel arrived after the response ended", extra={"error_code": error.code})
            else:
                self._report(error)
        else:
            if error.code == ACTIVE_RESPONSE_CODE:
                self.responses.lost_race_unmatched(error, self._speech_stopped_at)
            self._report(error)

    def _report(self, error: oa.ErrorDetail) -> None:
        if error.code == ACTIVE_RESPONSE_CODE:
            self.out.warning(error.code, error.message)
        else:
            self.out.error(error.code or error.type, error.message)

    # ------------------------------------------- renewal (README "Session renewal")

    def _arm_renewal_age(self, now: float) -> None:
        if self.renewal.proactive:
            self.out.start_timer(AGE_TIMER, now + self.renewal.renew_after_s)

    def _keep_context(self, entry: dg.HistoryMessage) -> None:
        """P3.4 context is part of the conversation a renewed upstream is given."""
        record = self.renewal.record
        if entry.function_calls:
            for call in entry.function_calls:
                record.function_call(call.id, call.name, call.arguments)
                record.function_output(call.id, call.response)
        elif entry.content is not None:
            record.message("assistant" if entry.role == "assistant" else "user", entry.content)

    def _renew(self, cause: str, now: float, *, code: int | None = None, reason: str | None = None) -> None:
        """Replace the upstream: settle what the old one had in flight, then connect the new one."""
        if not self.renewal.budget.allows(now):
            self.log.warning("renewal budget spent; ending the call", extra={"cause": cause})
            self._end_with_upstream(cause, code, reason)
            return
        active, requested = self.responses.reset()
        if active is not None:
            self.speech.ended(active)  # the interrupted turn ends for the client (AgentAudioDone); not replayed
        if requested is not None:
            self.responses.request(requested, first=True)  # never started: asked again of the new upstream
        self.updates.requeue_pending()
        unanswered, follow_up = self.calls.cancel_round()
        if unanswered:
            self.functions.cancelled(unanswered)  # FunctionCallCancelled; late answers are dropped
        self.renewal.record.forget_unanswered()
        if follow_up:
            self._request(ResponseRequest(FUNCTION))
        for _ in range(self.messages.reset()):
            self._request(ResponseRequest(USER))  # the item is replayed with the conversation
        self.waits.clear()
        self.turns.renewed()  # audio the old upstream had not committed is gone with it
        self._user_speaking = False
        self.setup.renewing()
        self.renewal.cause = cause
        self._connect_renewed(now)

    def _connect_renewed(self, now: float) -> None:
        """One connect of a renewal: a new upstream, configured as the session stands."""
        cause = self.renewal.cause or PROACTIVE
        if not self.renewal.budget.allows(now):
            self._end_with_upstream(cause, None, "the upstream could not be renewed")
            return
        self.renewal.started(cause, now)
        self.out.renew_upstream(cause)
        event_id = self.out.new_id("e")
        self.out.upstream(oa.SessionUpdate(event_id=event_id, session=self._kept_session()))
        self.waits.add(RENEW, event_id, now)
        self.out.start_timer(DEADLINE_TIMER, now + self.renewal.deadline_s)
        self._arm_renewal_age(now)

    def _kept_session(self) -> dict[str, Any]:
        """The first Settings' session.update with every acknowledged update applied."""
        plan = self.setup.plan
        assert plan is not None
        session = copy.deepcopy(plan.session)
        session["instructions"] = self.applied.instructions
        if self.applied.tools or "tools" in session:
            session["tools"] = [dict(tool) for tool in self.applied.tools]
        if self.applied.voice is not None:
            session.setdefault("audio", {}).setdefault("output", {})["voice"] = self.applied.voice
        if self.applied.transcription is not None:
            session.setdefault("audio", {}).setdefault("input", {})["transcription"] = self.applied.transcription
        return session

    def _renewed(self, now: float) -> None:
        """The new upstream is configured: replay the conversation, tell the client, release the hold."""
        self.waits.discard(self.waits.first(RENEW))
        self.out.cancel_timer(DEADLINE_TIMER)
        cause = self.renewal.finished()
        items = self.renewal.record.items()
        for item in items:  # as for Settings.agent.context (P3.4): no response.create
            self.out.upstream(oa.ConversationItemCreate(event_id=self.out.new_id("e"), item=item))
        self.log.info(
            "upstream renewed",
            extra={"cause": cause, "replayed_items": len(items), "dropped_entries": self.renewal.record.dropped},
        )
        self.out.warning("UPSTREAM_RENEWED", "the upstream session was renewed; the conversation continues")
        for message in self.setup.renewed():
            if self.out.closed:
                break
            self._dispatch(message, now)

    def _renewal_failed(self, description: str, now: float) -> None:
        self.waits.clear()
        self.out.cancel_timer(DEADLINE_TIMER)
        self.renewal.failures += 1
        self.log.warning("upstream renewal attempt failed", extra={"detail": description, "attempt": self.renewal.failures})
        if self.renewal.budget.allows(now):
            self.out.start_timer(RETRY_TIMER, now + RenewalBudget.backoff_s(self.renewal.failures))
        else:
            self.out.error("UPSTREAM_UNAVAILABLE", f"the upstream session ended and could not be renewed: {description}")
            self._close(1011, "upstream unavailable")

    def _report_expiry(self, reason: str | None) -> None:
        reason = reason or self.renewal.expiry_message
        if not self.renewal.expiry_reported:
            self.renewal.expiry_reported = True
            self.out.error(MAX_DURATION_CODE, f"the upstream session reached its maximum duration: {reason or 'no reason given'}")

    def _end_with_upstream(self, cause: str, code: int | None, reason: str | None) -> None:
        """The call ends with its upstream (renewal off or spent), with the upstream's reason kept."""
        detail = reason or "no reason given"
        if cause == EXPIRED:
            self._report_expiry(reason)
            self._close(1000, _close_reason(f"session ended: {detail}"))
        else:
            self._close(1011, _close_reason(f"upstream closed abnormally ({code if code is not None else 'no code'}): {detail}"))

    # -------------------------------------------------------------- helpers

    def _close(self, code: int, reason: str) -> None:
        if not self.out.closed:
            self.setup.close()
            self.out.close(code, reason)


def _close_reason(text: str) -> str:
    """RFC 6455 5.5: a close reason fits a control frame (123 bytes of UTF-8)."""
    data = text.encode()
    if len(data) <= 123:
        return text
    return data[:120].decode(errors="ignore") + "..."
class _SessionLog(logging.LoggerAdapter):
    """The default log: keeps each record's own `extra` (the stock adapter replaces it)."""

    def process(self, msg: str, kwargs: Any) -> tuple[str, Any]:
        kwargs["extra"] = {**self.extra, **kwargs.get("extra", {})}
        return msg, kwargs


_EVENT_HANDLERS: dict[type, Callable[[Session, Any, float], None]] = {
    Opened: Session._opened,
    ClientText: Session._client_text,
    ClientAudio: Session._client_audio,
    UpstreamText: Session._upstream_text,
    UpstreamClosed: Session._upstream_closed,
    UpstreamFailed: Session._upstream_failed,
    TimerFired: Session._timer_fired,
    GoingAway: Session._going_away,
    ClientClosed: Session._client_closed,
    FunctionResult: Session._function_result,
}

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
    "conversation.item.input_audio_transcription.delta": (oa.TranscriptionDelta, Session._on_transcription_delta),
    "response.output_text.delta": (None, Session._on_text_delta),
    "response.output_audio_transcript.delta": (None, Session._on_text_delta),
    "response.function_call_arguments.delta": (None, Session._on_arguments_delta),
    "input_audio_buffer.cleared": (None, Session._on_buffer_cleared),
    "response.function_call_arguments.done": (oa.FunctionCallArgumentsDone, Session._on_function_call),
    "response.done": (oa.ResponseEvent, Session._on_response_done),
    "input_audio_buffer.speech_started": (oa.SpeechStarted, Session._on_speech_started),
    "input_audio_buffer.speech_stopped": (oa.SpeechStopped, Session._on_speech_stopped),
    "input_audio_buffer.committed": (oa.AudioCommitted, Session._on_committed),
    "conversation.item.input_audio_transcription.completed": (oa.TranscriptionCompleted, Session._on_transcription),
    "conversation.item.input_audio_transcription.failed": (oa.TranscriptionFailed, Session._on_transcription_failed),
    "error": (oa.ErrorEvent, Session._on_error),
}
