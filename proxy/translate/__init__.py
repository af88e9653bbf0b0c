"""The pure translation layer: a state object fed events that returns actions.

Importing it imports no Trio, no sockets and no metrics (STYLE: a pure
package stays pure).
"""

from .actions import (
    Action,
    CallEndpoint,
    CancelTimer,
    CloseClient,
    RenewUpstream,
    StartTimer,
    ToClient,
    ToClientAudio,
    ToUpstream,
)
from .events import (
    ClientAudio,
    ClientText,
    Event,
    FunctionResult,
    GoingAway,
    Opened,
    TimerFired,
    UpstreamClosed,
    UpstreamFailed,
    UpstreamText,
)
from .session import FUNCTION_CALL_TIMER, UPDATE_TIMER, Session, SessionOptions

__all__ = [
    "Action",
    "CallEndpoint",
    "CancelTimer",
    "ClientAudio",
    "ClientText",
    "CloseClient",
    "Event",
    "FunctionResult",
    "FUNCTION_CALL_TIMER",
    "GoingAway",
    "Opened",
    "RenewUpstream",
    "Session",
    "SessionOptions",
    "StartTimer",
    "TimerFired",
    "ToClient",
    "ToClientAudio",
    "ToUpstream",
    "UPDATE_TIMER",
    "UpstreamClosed",
    "UpstreamFailed",
    "UpstreamText",
]
