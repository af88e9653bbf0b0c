"""What the translation is told: small immutable inputs, one class per kind.

`Session.handle(event, now)` is the one entry point; the Trio layer builds
these from what its readers and timers saw. Each carries only what its
handler may use, so a reader of the state machine knows every input it can
receive. New inputs (a forced end of turn, a renewal) are new classes here
and a row in `Session`'s handler table.
"""

from __future__ import annotations

import attrs


@attrs.frozen
class Opened:
    """The client was accepted (P2.1)."""

    NAME = "opened"


@attrs.frozen
class ClientText:
    """One text frame from the client: a JSON message (P1.1)."""

    text: str
    NAME = "client_text"


@attrs.frozen
class ClientAudio:
    """One binary frame from the client: microphone audio (P1.1, P5.9)."""

    data: bytes
    NAME = "client_audio"


@attrs.frozen
class UpstreamText:
    """One upstream server event as received (P6)."""

    text: str
    NAME = "upstream_text"


@attrs.frozen
class UpstreamClosed:
    """The upstream WebSocket closed (P2.4)."""

    code: int | None
    reason: str | None
    NAME = "upstream_closed"


@attrs.frozen
class UpstreamFailed:
    """The upstream could not be reached (P2.3); `description` holds no secret."""

    status: int | None
    description: str
    NAME = "upstream_failed"


@attrs.frozen
class TimerFired:
    """A deadline the session armed has passed.

    `token` is the one its `StartTimer` carried: a timer re-armed (or
    cancelled) after this one expired has another token, so an expiry that
    was already on its way is recognised as stale and ignored.
    """

    name: str
    token: int
    NAME = "timer"


@attrs.frozen
class FunctionResult:
    """A server-side function call (`CallEndpoint`) ended; `output` is its result or failure."""

    call_id: str
    output: str
    NAME = "function_result"


@attrs.frozen
class GoingAway:
    """The server is shutting down and the grace has run out (P2.6)."""

    NAME = "going_away"


@attrs.frozen
class ClientClosed:
    """The client closed (or its TCP dropped); the connection is ending (P2.5).

    The session's last chance to send upstream what it still holds: the
    input resampler's tail (P5.9).
    """

    NAME = "client_closed"


Event = (
    Opened | ClientText | ClientAudio | UpstreamText | UpstreamClosed | UpstreamFailed | TimerFired | GoingAway
    | ClientClosed | FunctionResult
)
