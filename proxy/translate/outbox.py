"""Where every component of a session puts what it wants done.

One object, shared by the session's parts through this small interface:
`upstream`, `client`, `audio`, `error`, `warning`, `close`, `start_timer`,
`cancel_timer`, `new_id`. It keeps the order of actions, refuses to emit
anything after the client was closed, and is the one place where text that
reaches the client in an `Error` or `Warning` passes the secret scrubber
(P1.5): whatever path upstream text takes (a rejected Settings or update, a
failed response, a race warning), it cannot carry the key past this point.
"""

from __future__ import annotations

import logging

import attrs

from ..protocol import deepgram as dg
from ..protocol import openai as oa
from ..redact import Redactor
from .actions import Action, CallEndpoint, CloseClient, RenewUpstream, ToClient, ToClientAudio, ToUpstream
from .renewal import ConversationRecord
from .timers import Timers


class Outbox:
    def __init__(self, connection_id: str, redactor: Redactor, log: logging.LoggerAdapter) -> None:
        self.log = log
        self.now = 0.0  # the time of the event being handled (set by the session)
        self._error_log = _RateLimit()
        self.timers = Timers()
        self.closed = False
        self._redactor = redactor
        # Session renewal keeps the conversation as the client saw it: every
        # ConversationText and FunctionCallRequest passes here (renewal.py).
        self.conversation: ConversationRecord | None = None
        self._actions: list[Action] = []
        # P1.6: ids are at most 32 characters: "px" + 12 hex + kind + counter.
        self._id_prefix = "px" + connection_id.replace("-", "")[:12]
        self._next_id = 0
        self._warned: set[str] = set()  # codes of `warning_once`
        # Settings.flags.history: each ConversationText is also reported as History.
        self.report_history = False

    def new_id(self, kind: str) -> str:
        self._next_id += 1
        return f"{self._id_prefix}{kind}{self._next_id}"

    def upstream(self, event: oa.ClientEvent) -> None:
        if not self.closed:
            self._actions.append(ToUpstream(event))

    def client(self, message: dg.ServerMessage) -> None:
        if self.closed:
            return
        kind = type(message)
        if kind is dg.Error or kind is dg.Warning:
            message = attrs.evolve(message, description=self._redactor.scrub(message.description))
        elif self.conversation is not None:
            if kind is dg.ConversationText:
                self.conversation.message(message.role, message.content)
            elif kind is dg.FunctionCallRequest:
                for call in message.functions:
                    self.conversation.function_call(call.id, call.name, call.arguments)
        self._actions.append(ToClient(message))
        if self.report_history and type(message) is dg.ConversationText:
            # In conversation order, as Deepgram reports it: right after the text.
            self._actions.append(ToClient(dg.HistoryText(role=message.role, content=message.content)))

    def audio(self, data: bytes) -> None:
        if not self.closed and data:
            self._actions.append(ToClientAudio(data))

    def error(self, code: str, description: str) -> None:
        # A client that sends a stream of bad frames gets an Error for each,
        # but the log gets a bounded number of records per code.
        allowed, suppressed = self._error_log.allow(code, self.now)
        if allowed:
            extra: dict = {"error_code": code}
            if suppressed:
                extra["suppressed"] = suppressed
            self.log.info("error sent to client", extra=extra)
        self.client(dg.Error(description=description, code=code))

    def warning(self, code: str, description: str) -> None:
        self.client(dg.Warning(description=description, code=code))

    def warning_once(self, code: str, description: str) -> None:
        """A Warning sent at most once per connection for `code` (P4: VOICE_IGNORED); repeats are only logged."""
        if code in self._warned:
            self.log.info("warning not repeated", extra={"error_code": code, "detail": description})
            return
        self._warned.add(code)
        self.warning(code, description)

    def close(self, code: int, reason: str) -> None:
        if not self.closed:
            self._actions.append(CloseClient(code, reason))
            self.closed = True

    def renew_upstream(self, cause: str) -> None:
        if not self.closed:
            self._actions.append(RenewUpstream(cause))
    def call_endpoint(self, action: CallEndpoint) -> None:
        if not self.closed:
            self._actions.append(action)

    def start_timer(self, name: str, deadline: float) -> None:
        self._actions.append(self.timers.start(name, deadline))

    def cancel_timer(self, name: str) -> None:
        action = self.timers.cancel(name)
        if action is not None:
            self._actions.append(action)

    def take(self) -> list[Action]:
        actions, self._actions = self._actions, []
        return actions


class _RateLimit:
    """At most `burst` records per key in each `window_s`; the next allowed one counts the rest."""

    BURST = 5
    WINDOW_S = 10.0
    MAX_KEYS = 64  # error codes are a closed set, but keep the map bounded anyway

    def __init__(self) -> None:
        self._windows: dict[str, list] = {}  # key -> [window start, records, suppressed]

    def allow(self, key: str, now: float) -> tuple[bool, int]:
        window = self._windows.get(key)
        if window is None or now - window[0] >= self.WINDOW_S:
            suppressed = window[2] if window is not None else 0
            if window is None and len(self._windows) >= self.MAX_KEYS:
                self._windows.clear()
            self._windows[key] = [now, 1, 0]
            return True, suppressed
        if window[1] < self.BURST:
            window[1] += 1
            return True, 0
        window[2] += 1
        return False, 0
