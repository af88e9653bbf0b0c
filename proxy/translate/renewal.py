"""Session renewal: what a new upstream needs, and how often one may be opened.

OpenAI ends every Realtime session after 60 minutes (`error` with code
`session_expired`, `event_id: null`, then a close with 1001 and the reason
"Your session hit the maximum duration of 60 minutes."), and sometimes drops
one mid-call after a `server_error`. A Deepgram client knows nothing of
upstream sessions, so the proxy keeps what a new one needs and opens it
behind the client's back: the session configuration as it stands after every
acknowledged update, and the conversation so far, replayed as items the way
`Settings.agent.context` is (P3.4).

Plain data; no I/O and no clock reads (times are passed in).
"""

from __future__ import annotations

from collections import deque
from typing import Any

import attrs

from ..protocol import openai as oa

# Why an upstream was replaced: the `cause` label of the renewals metric, a
# fixed set so a peer cannot mint label values.
EXPIRED = "expired"  # session_expired, or a close with 1001
CLOSED = "closed"  # any other close the client did not cause
SERVER_ERROR = "server_error"  # a server_error, then the close
PROACTIVE = "proactive"  # the session reached OPENAI_PROXY_RENEW_AFTER_S and was idle
CAUSES = (EXPIRED, CLOSED, SERVER_ERROR, PROACTIVE)

# The upstream error code that names the time limit, and the one the proxy
# tells a Deepgram client when it cannot renew: the code its clients (e.g.
# dg_react_agent) already treat as an expected end of the session.
EXPIRED_CODE = "session_expired"
MAX_DURATION_CODE = "session_max_duration"

# Between failed connects of one renewal: 0.25 s, 0.5 s, 1 s ... at most 4 s.
BACKOFF_FIRST_S = 0.25
BACKOFF_MAX_S = 4.0


@attrs.define
class _Message:
    role: str  # "user" | "assistant"
    text: str


@attrs.define
class _Call:
    call_id: str
    name: str
    arguments: str
    output: str | None = None


class ConversationRecord:
    """The conversation as the client saw it, bounded: oldest entries go first.

    A function call and its output are one entry, replayed only once the
    output is known (the upstream refuses an output without its call, and a
    call without an output would leave the model waiting for it).
    """

    def __init__(self, max_entries: int) -> None:
        self._entries: deque[_Message | _Call] = deque(maxlen=max(1, max_entries))
        self._calls: dict[str, _Call] = {}
        self.dropped = 0  # entries pushed out by the cap, for the renewal log record

    def __len__(self) -> int:
        return len(self._entries)

    def message(self, role: str, text: str) -> None:
        if text:
            self._append(_Message(role, text))

    def function_call(self, call_id: str, name: str, arguments: str) -> None:
        call = _Call(call_id, name, arguments)
        self._calls[call_id] = call
        self._append(call)

    def function_output(self, call_id: str, output: str) -> None:
        call = self._calls.pop(call_id, None)
        if call is not None:
            call.output = output

    def forget_unanswered(self) -> None:
        """A renewal cancels calls in flight: they are not part of the replay."""
        for call in self._calls.values():
            try:
                self._entries.remove(call)
            except ValueError:
                pass  # already pushed out by the cap
        self._calls.clear()

    def items(self) -> list[oa.Item]:
        """The conversation items a new upstream is given, in order."""
        items: list[oa.Item] = []
        for entry in self._entries:
            if isinstance(entry, _Message):
                part = "output_text" if entry.role == "assistant" else "input_text"
                items.append(oa.MessageItem(role=entry.role, content=(oa.ContentPart(type=part, text=entry.text),)))
            elif entry.output is not None:
                items.append(oa.FunctionCallItem(call_id=entry.call_id, name=entry.name, arguments=entry.arguments))
                items.append(oa.FunctionCallOutputItem(call_id=entry.call_id, output=entry.output))
        return items

    def _append(self, entry: _Message | _Call) -> None:
        if len(self._entries) == self._entries.maxlen:
            oldest = self._entries[0]
            if isinstance(oldest, _Call):
                self._calls.pop(oldest.call_id, None)
            self.dropped += 1
        self._entries.append(entry)


class RenewalBudget:
    """At most `max_renewals` renewals in any `window_s`; backoff between failed connects."""

    def __init__(self, max_renewals: int, window_s: float) -> None:
        self.max_renewals = max_renewals
        self.window_s = window_s
        self._started: deque[float] = deque()

    def allows(self, now: float) -> bool:
        while self._started and self._started[0] <= now - self.window_s:
            self._started.popleft()
        return len(self._started) < self.max_renewals

    def spend(self, now: float) -> None:
        self._started.append(now)

    @staticmethod
    def backoff_s(failures: int) -> float:
        return min(BACKOFF_MAX_S, BACKOFF_FIRST_S * 2 ** max(0, failures - 1))


def merge_session(target: dict[str, Any], update: dict[str, Any]) -> None:
    """Fold an acknowledged `session.update` into the configuration kept for renewal."""
    for key, value in update.items():
        if isinstance(value, dict) and isinstance(target.get(key), dict):
            merge_session(target[key], value)
        else:
            target[key] = value
