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


# Timers the session arms for renewal.
AGE_TIMER = "renew_age"  # the upstream session is OPENAI_PROXY_RENEW_AFTER_S old
RETRY_TIMER = "renew_retry"  # the backoff before the next connect
DEADLINE_TIMER = "renew_deadline"  # a new upstream that never gets configured


class Renewal:
    """The renewal state of one connection: settings, budget, what is kept, what is due.

    The session coordinates (it owns the parts a renewal resets); this holds
    what only renewal needs, so its rules read in one place.
    """

    def __init__(self, *, enabled: bool, renew_after_s: float, max_renewals: int, window_s: float,
                 history_items: int, deadline_s: float) -> None:
        self.enabled = enabled
        self.renew_after_s = renew_after_s
        self.deadline_s = deadline_s
        self.budget = RenewalBudget(max_renewals, window_s)
        self.record = ConversationRecord(history_items)
        self.due = False  # proactive: old enough, waiting for an idle moment
        self.cause: str | None = None  # of the renewal under way
        self.failures = 0  # connects that failed in the renewal under way
        # What the upstream said before it closed, which names the close's cause.
        self.expiring = False  # session_expired seen
        self.server_error = False  # server_error seen
        self.expiry_reported = False  # the client was told session_max_duration
        self.expiry_message: str | None = None  # the upstream's words for it

    @property
    def proactive(self) -> bool:
        return self.enabled and self.renew_after_s > 0

    def cause_of_close(self, code: int | None, reason: str | None) -> str | None:
        """Why the upstream closed, as a renewal cause; None for a clean close (P2.4: 1000 stays 1000).

        The time limit is a `session_expired` error before the close, or a
        close with 1001 whose reason names the maximum duration (the live
        API sometimes sends only the close).
        """
        if self.expiring or (code == 1001 and "maximum duration" in (reason or "")):
            return EXPIRED
        if code == 1000:
            return None  # a clean close, even after an earlier server_error the session survived
        if self.server_error:
            return SERVER_ERROR
        return CLOSED

    def started(self, cause: str, now: float) -> None:
        """One connect of a renewal is under way (each counts against the budget)."""
        self.budget.spend(now)
        self.cause = cause
        self.due = False
        self.expiring = self.server_error = False

    def finished(self) -> str:
        cause, self.cause = self.cause or CLOSED, None
        self.failures = 0
        return cause


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
