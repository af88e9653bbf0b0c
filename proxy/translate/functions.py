"""Function calls beyond P5.2: server-side functions, cancelled calls, their History.

- A function whose Settings entry has an `endpoint` is executed by the proxy
  (Deepgram runs those itself, and clients that use one never answer it):
  the client gets `FunctionCallRequest{client_side:false}`, the I/O layer
  gets a `CallEndpoint`, and its result (`function_result`) becomes the
  server's `FunctionCallResponse` and the `function_call_output` upstream,
  counted in the round like a client's answer (P5.2 follow-up rules).
- A response cancelled (by barge-in or an interrupting injection) while
  client-side calls it asked for are unanswered: `FunctionCallCancelled`
  names them, the round is dropped, and a late answer is neither forwarded
  nor followed up; a late server-side result is dropped the same way.
- With `Settings.flags.history`, each answered call is reported as History.

A part of `Session`, whose state (`_calls`, `_server_functions`) it uses.
"""

from __future__ import annotations

import attrs

from ..protocol import deepgram as dg
from .actions import CallEndpoint, CancelTimer
from .calls import FUNCTION_CALL_TIMER

# Late answers to cancelled calls are recognised for this many calls back;
# older ones are logged as unknown calls instead, which is just as harmless.
CANCELLED_CALLS_REMEMBERED = 256


@attrs.frozen
class CallInfo:
    name: str
    arguments: str
    client_side: bool


class ServerFunctions:
    def _call_asked(self, response_id: str, call_id: str, name: str, arguments: str) -> bool:
        """Record a call; for a server-side one, start it. Returns client_side."""
        endpoint = self._server_functions.get(name)
        client_side = endpoint is None
        self._call_info[call_id] = CallInfo(name, arguments, client_side)
        if endpoint is not None:
            self._out.append(CallEndpoint(call_id=call_id, name=name, arguments=arguments, endpoint=endpoint))
        return client_side

    def _new_call_round(self) -> None:
        """A new round starts: forget the calls of earlier ones (answered, followed up or abandoned)."""
        self._call_info.clear()

    def function_result(self, call_id: str, output: str, now: float) -> list:
        """The I/O layer's answer to a `CallEndpoint`: the function's output (or its failure)."""
        info = self._call_info.get(call_id)
        round_ = self._calls
        if info is None or info.client_side or round_ is None or call_id not in round_.calls or call_id in round_.answered:
            # Its response was cancelled, or the connection moved on.
            self.log.info("server-side function result dropped", extra={"call_id": call_id})
            return self._flush()
        self._client(dg.ServerFunctionCallResponse(id=call_id, name=info.name, content=output))
        self._function_call_response(dg.FunctionCallResponse(id=call_id, content=output, name=info.name), now)
        self._call_answered(call_id, output)
        return self._flush()

    def _answer_refused(self, message: dg.FunctionCallResponse) -> bool:
        """True when a client's FunctionCallResponse must not be forwarded."""
        if message.id in self._cancelled_calls:
            self.log.info("FunctionCallResponse for a cancelled call dropped", extra={"call_id": message.id})
            return True
        info = self._call_info.get(message.id)
        if info is not None and not info.client_side:
            self.log.warning("FunctionCallResponse for a server-side call dropped", extra={"call_id": message.id})
            return True
        return False

    def _call_answered(self, call_id: str, output: str) -> None:
        """History of one answered call (Settings.flags.history)."""
        info = self._call_info.get(call_id)
        if info is None or not self._report_history:
            return
        self._client(
            dg.HistoryFunctionCalls(
                function_calls=(
                    dg.HistoryCall(
                        id=call_id, name=info.name, client_side=info.client_side, arguments=info.arguments, response=output
                    ),
                )
            )
        )

    def _calls_cancelled(self, response_id: str) -> None:
        """The response that asked for the current round was cancelled: no answer, no follow-up."""
        round_ = self._calls
        if round_ is None or round_.response_id != response_id:
            return
        unanswered = [call_id for call_id in round_.calls if call_id not in round_.answered]
        client_side = [call_id for call_id in unanswered if self._call_info.get(call_id, CallInfo("", "", True)).client_side]
        if client_side:
            self._client(
                dg.FunctionCallCancelled(
                    functions=tuple(dg.CancelledCall(id=call_id, name=round_.calls[call_id]) for call_id in client_side)
                )
            )
        for call_id in unanswered:
            self._cancelled_calls[call_id] = None
            while len(self._cancelled_calls) > CANCELLED_CALLS_REMEMBERED:
                self._cancelled_calls.popitem(last=False)
        self._new_call_round()
        self._calls = None
        self._out.append(CancelTimer(FUNCTION_CALL_TIMER))
