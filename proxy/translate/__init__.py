"""The pure translation layer: a state object fed events that returns actions."""

from .actions import Action, CancelTimer, CloseClient, RenewUpstream, StartTimer, ToClient, ToClientAudio, ToUpstream
from .session import FUNCTION_CALL_TIMER, UPDATE_TIMER, Session, SessionOptions

__all__ = [
    "Action",
    "CancelTimer",
    "CloseClient",
    "FUNCTION_CALL_TIMER",
    "RenewUpstream",
    "Session",
    "SessionOptions",
    "StartTimer",
    "ToClient",
    "ToClientAudio",
    "ToUpstream",
    "UPDATE_TIMER",
]
