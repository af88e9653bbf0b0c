"""P5.2: function calls asked by a response, answered by the client.

The follow-up `response.create` goes once, after the asking response is done
and every call it asked for is answered; if the upstream never says the
response is done, a deadline (counted from the client's last answer) sends it
anyway. A part of `Session`, whose state (`_calls`) it uses.
"""

from __future__ import annotations

from ..protocol import deepgram as dg
from ..protocol import openai as oa
from .actions import CancelTimer, StartTimer
from .turns import FUNCTION, CallRound, ResponseRequest

FUNCTION_CALL_TIMER = "function_call"


class FunctionCalls:
    def _function_call_response(self, message: dg.FunctionCallResponse, now: float) -> None:
        """P5.2: forward the output; follow up once the round is complete."""
        self._upstream(
            oa.ConversationItemCreate(
                event_id=self._new_id("e"),
                item=oa.FunctionCallOutputItem(call_id=message.id, output=message.content),
            )
        )
        round_ = self._calls
        if round_ is None or message.id not in round_.calls:
            self.log.warning("FunctionCallResponse for a call not asked in this round", extra={"call_id": message.id})
            return
        round_.answered.add(message.id)
        round_.last_answer_at = now
        if round_.complete:
            self._follow_up_calls(now)
        elif round_.all_answered:
            # The upstream has not said the asking response is done: wait for it,
            # but not forever (counted from the client's last answer).
            self._out.append(StartTimer(FUNCTION_CALL_TIMER, now + self.options.function_call_deadline_s))

    def _follow_up_calls(self, now: float) -> None:
        self._calls = None
        self._out.append(CancelTimer(FUNCTION_CALL_TIMER))
        self._request_response(ResponseRequest(FUNCTION), now)

    def _function_call_deadline(self, now: float) -> None:
        round_ = self._calls
        if round_ is None or not round_.all_answered:
            return
        self.log.error(
            "no response.done arrived for the response that asked for function calls; sending the follow-up anyway",
            extra={"missing_signal": "response.done", "response_id": round_.response_id},
        )
        if self._response is not None and self._response.id == round_.response_id:
            self._end_response(self._response, now)
        self._follow_up_calls(now)

    def _on_function_call(self, event: oa.FunctionCallArgumentsDone, now: float) -> None:
        if self._calls is None or self._calls.response_id != event.response_id:
            if self._calls is not None:
                self.log.warning("function calls left unanswered", extra={"response_id": self._calls.response_id})
            self._new_call_round()
            self._calls = CallRound(response_id=event.response_id)
        self._calls.calls[event.call_id] = event.name
        if self._latency is not None:
            self._latency.tool(now)
        # The request goes to the client first, then (server-side) the call starts.
        client_side = event.name not in self._server_functions
        self._client(
            dg.FunctionCallRequest(
                functions=(
                    dg.FunctionCallRequestItem(
                        id=event.call_id, name=event.name, arguments=event.arguments, client_side=client_side
                    ),
                )
            )
        )
        self._call_asked(event.response_id, event.call_id, event.name, event.arguments)
