"""The session's phases and the only transitions between them.

Like h11's `_state.py`: a phase is a value, the legal moves are a table, and
a move with no entry is a bug that raises at once instead of leaving a
session half in one phase and half in another. Two machines run side by
side: setup (P3) and the response in flight (P5.1, P5.3). A later phase (a
renewal, say) is a new member and new rows.
"""

from __future__ import annotations

import enum


class SetupPhase(enum.Enum):
    AWAITING_SETTINGS = "awaiting Settings"  # nothing valid yet (P3.7 keeps us here)
    SETTINGS_SENT = "Settings sent"  # the first session.update is in flight (P3.6 holds)
    READY = "ready"  # session.updated seen (P3.3)
    CLOSED = "closed"  # a CloseClient was issued; nothing more is sent


SETUP_TRANSITIONS: dict[SetupPhase, frozenset[SetupPhase]] = {
    SetupPhase.AWAITING_SETTINGS: frozenset({SetupPhase.SETTINGS_SENT, SetupPhase.CLOSED}),
    # Rejected by the upstream: back to waiting for a corrected Settings (P3.7).
    SetupPhase.SETTINGS_SENT: frozenset({SetupPhase.READY, SetupPhase.AWAITING_SETTINGS, SetupPhase.CLOSED}),
    SetupPhase.READY: frozenset({SetupPhase.CLOSED}),
    SetupPhase.CLOSED: frozenset(),
}


class ResponsePhase(enum.Enum):
    IDLE = "idle"  # no response.create outstanding, none active
    REQUESTED = "requested"  # our response.create is sent, response.created not yet seen
    ACTIVE = "active"  # a response (ours or the upstream's) between created and done


RESPONSE_TRANSITIONS: dict[ResponsePhase, frozenset[ResponsePhase]] = {
    ResponsePhase.IDLE: frozenset({ResponsePhase.REQUESTED, ResponsePhase.ACTIVE}),
    # Created (ACTIVE), or refused / timed out (IDLE).
    ResponsePhase.REQUESTED: frozenset({ResponsePhase.ACTIVE, ResponsePhase.IDLE}),
    # Done: IDLE, or REQUESTED when our response.create lost a race with the
    # upstream's own turn detection and is still unanswered.
    ResponsePhase.ACTIVE: frozenset({ResponsePhase.IDLE, ResponsePhase.REQUESTED}),
}


class IllegalTransition(RuntimeError):
    pass


class Machine:
    """A current phase that moves only along its table."""

    __slots__ = ("phase", "_table")

    def __init__(self, initial: enum.Enum, table: dict) -> None:
        self.phase = initial
        self._table = table

    def move(self, to: enum.Enum) -> None:
        if to is self.phase:
            return
        if to not in self._table[self.phase]:
            raise IllegalTransition(f"{self.phase.value} -> {to.value}")
        self.phase = to

    def __repr__(self) -> str:
        return f"<{self.phase.value}>"
