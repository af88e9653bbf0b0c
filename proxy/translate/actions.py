"""What the translation asks the I/O layer to do. Plain values, no behaviour."""

from __future__ import annotations

import attrs

from ..protocol.deepgram import ServerMessage
from ..protocol.openai import ClientEvent


@attrs.frozen
class ToUpstream:
    event: ClientEvent


@attrs.frozen
class ToClient:
    message: ServerMessage


@attrs.frozen
class ToClientAudio:
    """Agent speech, already in the client's output format: one binary frame (P1.2)."""

    data: bytes


@attrs.frozen
class CloseClient:
    code: int
    reason: str


@attrs.frozen
class StartTimer:
    """Arm (or re-arm) the named deadline at `deadline` on the Trio clock.

    When it passes, feed back `TimerFired(name, token)` with this token.
    """

    name: str
    deadline: float
    token: int = 0


@attrs.frozen
class CancelTimer:
    name: str


Action = ToUpstream | ToClient | ToClientAudio | CloseClient | StartTimer | CancelTimer
