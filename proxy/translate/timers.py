"""Deadlines the session arms, each identified by a token.

The Trio layer keeps one deadline per name; when it passes it sends back
`TimerFired(name, token)`. An expiry can already be queued for the session
while the session re-arms or cancels that name (an update acknowledged just
as its deadline passed, then the next update armed): the token tells the
stale expiry from the live one, and a stale one is ignored.
"""

from __future__ import annotations

from .actions import CancelTimer, StartTimer


class Timers:
    def __init__(self) -> None:
        self._live: dict[str, int] = {}  # name -> token of the armed deadline
        self._next_token = 0

    def start(self, name: str, deadline: float) -> StartTimer:
        self._next_token += 1
        self._live[name] = self._next_token
        return StartTimer(name, deadline, self._next_token)

    def cancel(self, name: str) -> CancelTimer | None:
        """The action to cancel `name`, or None when it is not armed."""
        if self._live.pop(name, None) is None:
            return None
        return CancelTimer(name)

    def fired(self, name: str, token: int) -> bool:
        """True (and forgotten) if this is the armed deadline; False if stale."""
        if self._live.get(name) != token:
            return False
        del self._live[name]
        return True

    def armed(self, name: str) -> bool:
        return name in self._live
