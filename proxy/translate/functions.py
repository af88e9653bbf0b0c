"""Function calls beyond P5.2: server-side functions, cancelled calls, their History.

- A function whose Settings entry has an `endpoint` is executed by the proxy
  (Deepgram runs those itself, and clients that use one never answer it):
  the client gets `FunctionCallRequest{client_side:false}`, the I/O layer
  gets a `CallEndpoint`, and its result (the `FunctionResult` event)
  becomes the server's `FunctionCallResponse` and the `function_call_output`
  upstream, counted in the round like a client's answer (P5.2 follow-up).
- A response cancelled (by barge-in or an interrupting injection) while
  client-side calls it asked for are unanswered: `FunctionCallCancelled`
  names them, the round is dropped, and a late answer is neither forwarded
  nor followed up; a late server-side result is dropped the same way.
- With `Settings.flags.history`, each answered call is reported as History.

`FunctionCalls` keeps the round; this part keeps what a round does not
need: each call's arguments and where it runs, and the calls cancelled.
"""

from __future__ import annotations

import logging
from collections import OrderedDict

import attrs

from ..protocol import deepgram as dg
from .actions import CallEndpoint
from .outbox import Outbox
from .turns import Applied

# Late answers to cancelled calls are recognised for this many calls back;
# older ones are logged as calls not asked, which is just as harmless.
CANCELLED_CALLS_REMEMBERED = 256


@attrs.frozen
class CallInfo:
    name: str
    arguments: str
    client_side: bool


class ServerFunctions:
    def __init__(self, out: Outbox, log: logging.LoggerAdapter, applied: Applied) -> None:
        self._out = out
        self._log = log
        self._applied = applied  # its server_functions: name -> endpoint, of the think in force
        self._calls: dict[str, CallInfo] = {}  # the current round's calls
        self._cancelled: OrderedDict[str, None] = OrderedDict()

    def client_side(self, name: str) -> bool:
        return name not in self._applied.server_functions

    def asked(self, call_id: str, name: str, arguments: str, *, new_round: bool) -> None:
        """Record a call (after its FunctionCallRequest went out); a server-side one starts now."""
        if new_round:
            self._calls.clear()  # earlier rounds are answered, followed up or abandoned
        endpoint = self._applied.server_functions.get(name)
        self._calls[call_id] = CallInfo(name, arguments, endpoint is None)
        if endpoint is not None:
            self._out.call_endpoint(CallEndpoint(call_id=call_id, name=name, arguments=arguments, endpoint=endpoint))

    def result(self, call_id: str, output: str, *, outstanding: bool) -> dg.FunctionCallResponse | None:
        """A server-side call's output: sent to the client; returns the answer for the round, or None."""
        info = self._calls.get(call_id)
        if info is None or info.client_side or not outstanding:
            self._log.info("server-side function result dropped (its response was cancelled)", extra={"call_id": call_id})
            return None
        self._out.client(dg.ServerFunctionCallResponse(id=call_id, name=info.name, content=output))
        return dg.FunctionCallResponse(id=call_id, content=output, name=info.name)

    def refuse(self, message: dg.FunctionCallResponse) -> bool:
        """True when a client's FunctionCallResponse must not be forwarded."""
        if message.id in self._cancelled:
            self._log.info("FunctionCallResponse for a cancelled call dropped", extra={"call_id": message.id})
            return True
        info = self._calls.get(message.id)
        if info is not None and not info.client_side:
            self._log.warning("FunctionCallResponse for a server-side call dropped", extra={"call_id": message.id})
            return True
        return False

    def answered(self, call_id: str, output: str) -> None:
        """History of one answered call (Settings.flags.history)."""
        info = self._calls.get(call_id)
        if info is None or not self._out.report_history:
            return
        call = dg.HistoryCall(id=call_id, name=info.name, client_side=info.client_side, arguments=info.arguments, response=output)
        self._out.client(dg.HistoryFunctionCalls(function_calls=(call,)))

    def cancelled(self, unanswered: list[tuple[str, str]]) -> None:
        """The asking response was cancelled: the client must not answer its client-side calls."""
        client_side = [(call_id, name) for call_id, name in unanswered if self._calls.get(call_id, CallInfo(name, "", True)).client_side]
        if client_side:
            self._out.client(
                dg.FunctionCallCancelled(functions=tuple(dg.CancelledCall(id=call_id, name=name) for call_id, name in client_side))
            )
        for call_id, _ in unanswered:
            self._cancelled[call_id] = None
        while len(self._cancelled) > CANCELLED_CALLS_REMEMBERED:
            self._cancelled.popitem(last=False)
