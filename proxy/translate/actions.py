"""What the translation asks the I/O layer to do. Plain values, no behaviour."""

from __future__ import annotations

import attrs

from ..protocol.deepgram import FunctionEndpoint, ServerMessage
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


@attrs.frozen
class RenewUpstream:
    """Replace the upstream: close the current one (1000) and open a new one.

    Every `ToUpstream` after this action goes to the new upstream; events of
    the old one that are still in flight are dropped by the I/O layer. The
    outcome comes back as the new upstream's events, or `upstream_failed`.
    """

    cause: str  # one of proxy.translate.renewal.CAUSES (a metrics label)


@attrs.frozen
class CallEndpoint:
    """Run a server-side function: request `endpoint` with the call's `arguments`.

    The I/O layer (proxy.endpoints) enforces the host allowlist on the
    resolved address, the deadline and the size cap, and always answers with
    the session's `function_result` for `call_id`, even on failure.
    """

    call_id: str
    name: str
    arguments: str
    endpoint: FunctionEndpoint


Action = ToUpstream | ToClient | ToClientAudio | CloseClient | StartTimer | CancelTimer | RenewUpstream | CallEndpoint
