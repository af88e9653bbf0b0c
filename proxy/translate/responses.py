"""Responses: at most one at a time (P5.1, P5.3), along `RESPONSE_TRANSITIONS`.

idle -> requested (our response.create sent) -> active (response.created)
-> idle (response.done). A response the upstream's turn detection created
goes idle -> active directly. Every request has an exit: the response it
caused, an upstream error naming it (by event_id or by the rule in
`waits`), or a deadline (`RESPONSE_TIMEOUT`), after which the phase is idle
again and the next request can go; an error naming our response.create can
no longer leave the session believing a response is on its way.

Requests wait in a bounded queue (`RESPONSE_QUEUE_FULL` past it): each
entry becomes a billed response, and a client looping
`InjectAgentMessage{behavior:"queue"}` must not grow it without end.
"""

from __future__ import annotations

import logging
from collections import deque

from ..protocol import openai as oa
from .audio import AudioFormat, OutboundStream
from .outbox import Outbox
from .states import RESPONSE_TRANSITIONS, Machine, ResponsePhase
from .turns import VOICE, ActiveResponse, ResponseRequest
from .waits import RESPONSE, Wait, Waits

# P6 error row: a harmless race with the upstream's own turn detection.
ACTIVE_RESPONSE_CODE = "conversation_already_has_active_response"
RESPONSE_TIMER = "response"


class Responses:
    def __init__(self, out: Outbox, waits: Waits, log: logging.LoggerAdapter, *, max_queued: int,
                 timeout_s: float) -> None:
        self._out = out
        self._timeout_s = timeout_s
        self._waits = waits
        self._log = log
        self._max_queued = max_queued
        self._machine = Machine(ResponsePhase.IDLE, RESPONSE_TRANSITIONS)
        self._queue: deque[ResponseRequest] = deque()
        self.requested: ResponseRequest | None = None  # sent, not yet created
        self.active: ActiveResponse | None = None

    @property
    def phase(self) -> ResponsePhase:
        return self._machine.phase

    @property
    def busy(self) -> bool:
        """A response is active or requested (P5.3 `default` refuses then)."""
        return self._machine.phase is not ResponsePhase.IDLE

    @property
    def queued(self) -> int:
        return len(self._queue)

    def request(self, request: ResponseRequest, *, first: bool = False) -> bool:
        """Queue a response.create; False (and an Error to the client) when the queue is full."""
        if len(self._queue) >= self._max_queued:
            self._out.error(
                "RESPONSE_QUEUE_FULL",
                f"{request.kind} response refused: {self._max_queued} responses are already waiting",
            )
            return False
        if first:
            self._queue.appendleft(request)
        else:
            self._queue.append(request)
        return True

    def start_next(self, now: float) -> None:
        """Send the next queued request if nothing is requested or active."""
        if self.busy or not self._queue:
            return
        request = self._queue.popleft()
        request.event_id = self._out.new_id("e")
        request.sent_at = now  # P6.4: the turn ends when the proxy asks for the response
        params = None
        if request.instructions is not None or request.out_of_band:
            params = oa.ResponseParams(
                instructions=request.instructions,
                conversation="none" if request.out_of_band else None,
                metadata={"proxy_request": request.event_id},
            )
        self._out.upstream(oa.ResponseCreate(event_id=request.event_id, response=params))
        self._waits.add(RESPONSE, request.event_id, now, request)
        self.requested = request
        self._machine.move(ResponsePhase.REQUESTED)
        self._out.start_timer(RESPONSE_TIMER, now + self._timeout_s)

    def created(self, response: oa.Response, now: float, *, speech_stopped_at: float | None,
                output_format: AudioFormat) -> ActiveResponse:
        request = self.requested
        metadata = response.metadata or {}
        ours = request is not None and (
            metadata.get("proxy_request") == request.event_id or "proxy_request" not in metadata
        )
        if ours:
            assert request is not None and request.sent_at is not None
            self._waits.discard(self._waits.first(RESPONSE))
            self.requested = None
            self._out.cancel_timer(RESPONSE_TIMER)
            kind, turn_end, out_of_band = request.kind, request.sent_at, request.out_of_band
        else:
            # Created by the upstream's own turn detection: the turn ended at speech_stopped.
            kind, turn_end, out_of_band = VOICE, speech_stopped_at or now, False
        if self.active is not None:
            self._log.warning("response.created while another response is active", extra={"response_id": response.id})
        self.active = ActiveResponse(
            id=response.id,
            kind=kind,
            turn_end=turn_end,
            created_at=now,
            output=OutboundStream(output_format),
            out_of_band=out_of_band,
            request=request if ours else None,
        )
        self._machine.move(ResponsePhase.ACTIVE)
        return self.active

    def done(self, response: oa.Response | None) -> ActiveResponse | None:
        """response.done: the active response it ends, if any.

        `response` None: a response.done too malformed to read; it still
        ends the active response (only one can be active), or the session
        would wait for a done that already came.
        """
        active = self.active
        if active is not None and (response is None or response.id == active.id):
            self.active = None
            self._settle()
            return active
        if response is not None and self.requested is not None and response.metadata and (
            response.metadata.get("proxy_request") == self.requested.event_id
        ):
            self._drop_request()  # ended before we saw it begin
        self._log.debug("response.done for a response not active", extra={"response_id": response.id if response else None})
        return None

    def rejected(self, wait: Wait, error: oa.ErrorDetail) -> None:
        """An upstream error names our response.create (P6 error row)."""
        request: ResponseRequest = wait.subject
        if request is not self.requested:
            return
        self._drop_request()
        if error.code == ACTIVE_RESPONSE_CODE:
            # Lost a race with the upstream's own turn detection: ask again
            # once the response that won is done.
            self._queue.appendleft(request)

    def deadline(self) -> None:
        """No response.created and no error for our response.create in time: give up on it."""
        if self.requested is None:
            return
        self._log.error(
            "the upstream neither started nor refused the requested response",
            extra={"missing_signal": "response.created", "kind": self.requested.kind},
        )
        self._out.error("RESPONSE_TIMEOUT", f"the upstream did not start the {self.requested.kind} response in time")
        self._drop_request()

    def lost_race_unmatched(self, error: oa.ErrorDetail, speech_stopped_at: float | None) -> None:
        """`conversation_already_has_active_response` that matched no wait.

        The winner came without our metadata and was taken for ours: the
        request is asked again once it is done, and the active response is
        the upstream's own.
        """
        active = self.active
        if active is None or active.request is None:
            return
        if error.event_id is not None and error.event_id != active.request.event_id:
            return
        self._queue.appendleft(active.request)
        active.request, active.kind = None, VOICE
        active.turn_end = speech_stopped_at or active.created_at

    def _drop_request(self) -> None:
        self._waits.discard(self._waits.first(RESPONSE))
        self.requested = None
        self._out.cancel_timer(RESPONSE_TIMER)
        self._settle()

    def _settle(self) -> None:
        if self.active is not None:
            self._machine.move(ResponsePhase.ACTIVE)
        elif self.requested is not None:
            self._machine.move(ResponsePhase.REQUESTED)
        else:
            self._machine.move(ResponsePhase.IDLE)
