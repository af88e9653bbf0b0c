"""P5.2: function calls asked by a response, answered by the client.

The follow-up `response.create` goes once, after the asking response is done
and every call it asked for is answered; if the upstream never says the
response is done, a deadline (counted from the client's last answer) sends it
anyway. The methods return True when the follow-up is due; the session
requests it, since responses are not this part's to send.
"""

from __future__ import annotations

import logging

from ..protocol import deepgram as dg
from ..protocol import openai as oa
from .outbox import Outbox
from .turns import CallRound

FUNCTION_CALL_TIMER = "function_call"
# Call ids already answered, oldest first: enough to catch a client's second
# answer to one call (dg_react_agent sends its handler's result, then
# "Handler completed without sending a response" when the handler returns),
# bounded so a long conversation cannot grow it.
MAX_ANSWERED_CALLS = 256


class FunctionCalls:
    def __init__(self, out: Outbox, log: logging.LoggerAdapter, *, deadline_s: float) -> None:
        self._out = out
        self._log = log
        self._deadline_s = deadline_s
        self._round: CallRound | None = None
        self._answered: dict[str, None] = {}  # ordered set of call ids

    @property
    def asking_response(self) -> str | None:
        """The id of the response whose calls are outstanding, if any."""
        return self._round.response_id if self._round is not None else None

    def requested(self, event: oa.FunctionCallArgumentsDone, *, client_side: bool = True) -> bool:
        """The upstream asks for a call: hand it to the client (P6 row).

        `client_side` False: a server-side function, run by the proxy, whose
        result counts in the round like a client's answer. Returns True when
        this call starts a new round.
        """
        new_round = self._round is None or self._round.response_id != event.response_id
        if new_round:
            if self._round is not None:
                self._log.warning("function calls left unanswered", extra={"response_id": self._round.response_id})
            self._round = CallRound(response_id=event.response_id)
        assert self._round is not None
        self._round.calls[event.call_id] = event.name
        self._out.client(
            dg.FunctionCallRequest(
                functions=(
                    dg.FunctionCallRequestItem(
                        id=event.call_id, name=event.name, arguments=event.arguments, client_side=client_side
                    ),
                )
            )
        )
        return new_round

    def outstanding(self, call_id: str) -> bool:
        """The call is in the current round and not answered yet."""
        round_ = self._round
        return round_ is not None and call_id in round_.calls and call_id not in round_.answered

    def cancelled(self, response_id: str) -> list[tuple[str, str]]:
        """The asking response was cancelled: drop the round, no follow-up; returns the unanswered (id, name)."""
        round_ = self._round
        if round_ is None or round_.response_id != response_id:
            return []
        unanswered = [(call_id, name) for call_id, name in round_.calls.items() if call_id not in round_.answered]
        self._round = None
        self._out.cancel_timer(FUNCTION_CALL_TIMER)
        return unanswered

    def answered(self, message: dg.FunctionCallResponse, now: float) -> bool:
        """P5.2: forward the output; True when the round is complete."""
        if message.id in self._answered:
            # A call's first answer only: a second function_call_output for one
            # call_id would put two answers in the model's conversation.
            self._log.warning("second FunctionCallResponse for an answered call dropped", extra={"call_id": message.id})
            return False
        self._answered[message.id] = None
        if len(self._answered) > MAX_ANSWERED_CALLS:
            del self._answered[next(iter(self._answered))]
        self._out.upstream(
            oa.ConversationItemCreate(
                event_id=self._out.new_id("e"),
                item=oa.FunctionCallOutputItem(call_id=message.id, output=message.content),
            )
        )
        round_ = self._round
        if round_ is None or message.id not in round_.calls:
            self._log.warning("FunctionCallResponse for a call not asked in this round", extra={"call_id": message.id})
            return False
        round_.answered.add(message.id)
        round_.last_answer_at = now
        if round_.complete:
            return self._finish()
        if round_.all_answered:
            # The upstream has not said the asking response is done: wait for it,
            # but not forever (counted from the client's last answer).
            self._out.start_timer(FUNCTION_CALL_TIMER, now + self._deadline_s)
        return False

    def response_done(self, response_id: str) -> bool:
        """The asking response is done; True when the follow-up is due."""
        round_ = self._round
        if round_ is None or round_.response_id != response_id:
            return False
        round_.response_done = True
        return self._finish() if round_.complete else False

    def deadline(self) -> bool:
        """The deadline passed without response.done; True: send the follow-up anyway."""
        round_ = self._round
        if round_ is None or not round_.all_answered:
            return False
        self._log.error(
            "no response.done arrived for the response that asked for function calls; sending the follow-up anyway",
            extra={"missing_signal": "response.done", "response_id": round_.response_id},
        )
        return self._finish()

    def cancel_round(self) -> tuple[list[tuple[str, str]], bool]:
        """A renewal: the round in flight ends with the old upstream.

        Returns the calls the client has not answered, (id, name), which it
        must now not answer, and whether the follow-up is due anyway (every
        call was answered, only the upstream's signal was missing).
        """
        round_ = self._round
        if round_ is None:
            return [], False
        self._round = None
        self._out.cancel_timer(FUNCTION_CALL_TIMER)
        unanswered = [(call_id, name) for call_id, name in round_.calls.items() if call_id not in round_.answered]
        return unanswered, not unanswered

    def _finish(self) -> bool:
        self._round = None
        self._out.cancel_timer(FUNCTION_CALL_TIMER)
        return True
