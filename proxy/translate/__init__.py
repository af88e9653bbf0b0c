"""The pure translation layer: a state object fed events that returns actions."""

from .actions import Action, CallEndpoint, CancelTimer, CloseClient, StartTimer, ToClient, ToClientAudio, ToUpstream
from .session import FUNCTION_CALL_TIMER, UPDATE_TIMER, Session, SessionOptions

__all__ = [
    "Action",
    "CallEndpoint",
    "CancelTimer",
    "CloseClient",
    "FUNCTION_CALL_TIMER",
    "Session",
    "SessionOptions",
    "StartTimer",
    "ToClient",
    "ToClientAudio",
    "ToUpstream",
    "UPDATE_TIMER",
]
