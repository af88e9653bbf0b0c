"""Test helpers shipped with the package: a fake OpenAI Realtime upstream and a
small Deepgram-protocol client, so applications can test against the proxy
without the real services."""

from .client import DEFAULT_SETTINGS, AgentClient, open_agent_client
from .fake_upstream import DEFAULT_AUDIO, DEFAULT_REPLY, FakeConnection, FakeRealtime, UserTurn, speak_reply
from .offline import offline_reply

__all__ = [
    "AgentClient",
    "DEFAULT_AUDIO",
    "DEFAULT_REPLY",
    "DEFAULT_SETTINGS",
    "FakeConnection",
    "FakeRealtime",
    "UserTurn",
    "offline_reply",
    "open_agent_client",
    "speak_reply",
]
