"""Drive a pure `Session` without sockets: feed events, read what it asked for.

Upstream events and client messages come back as wire dicts (through the same
encoders the server uses), so unit tests read like the protocol.
"""

from __future__ import annotations

import json
from typing import Any

from proxy.protocol.wire import encode_client, encode_upstream
from proxy.testing import DEFAULT_SETTINGS
from proxy.translate import (
    CancelTimer,
    ClientAudio,
    ClientText,
    CloseClient,
    Opened,
    Session,
    SessionOptions,
    StartTimer,
    TimerFired,
    ToClient,
    ToClientAudio,
    ToUpstream,
    UpstreamText,
)


class Harness:
    def __init__(self, **options: Any) -> None:
        self.session = Session("0123abcd-0000-4000-8000-000000000000", SessionOptions(**options))
        self.now = 0.0
        self.upstream: list[dict[str, Any]] = []
        self.client: list[dict[str, Any] | bytes] = []
        self.closed: CloseClient | None = None
        self.timers: dict[str, float] = {}  # armed deadlines by name
        self.tokens: dict[str, int] = {}  # and the token each StartTimer carried
        self._ids = 0
        self.take(self.session.handle(Opened(), self.now))

    # --- feeding
    def take(self, actions: list) -> list:
        for action in actions:
            if isinstance(action, ToUpstream):
                self.upstream.append(json.loads(encode_upstream(action.event)))
            elif isinstance(action, ToClient):
                self.client.append(json.loads(encode_client(action.message)))
            elif isinstance(action, ToClientAudio):
                self.client.append(action.data)
            elif isinstance(action, CloseClient):
                self.closed = action
            elif isinstance(action, StartTimer):
                self.timers[action.name] = action.deadline
                self.tokens[action.name] = action.token
            elif isinstance(action, CancelTimer):
                self.timers.pop(action.name, None)
        return actions

    def send(self, message: dict[str, Any]) -> list:
        return self.take(self.session.handle(ClientText(json.dumps(message)), self.now))

    def audio(self, data: bytes) -> list:
        return self.take(self.session.handle(ClientAudio(data), self.now))

    def up(self, event_type: str, **fields: Any) -> list:
        self._ids += 1
        event = {"type": event_type, "event_id": f"event_{self._ids}", **fields}
        return self.take(self.session.handle(UpstreamText(json.dumps(event)), self.now))

    def fire(self, name: str) -> list:
        self.now = max(self.now, self.timers.pop(name))
        return self.take(self.session.handle(TimerFired(name, self.tokens.pop(name)), self.now))

    def ready(self, settings: dict[str, Any] | None = None) -> None:
        self.send(settings or DEFAULT_SETTINGS)
        self.up("session.updated", session={})

    # --- upstream script pieces
    def created(self, response_id: str, metadata: dict | None = None) -> None:
        self.up("response.created", response={"id": response_id, "status": "in_progress", "metadata": metadata})

    def created_for_last_request(self, response_id: str) -> None:
        create = self.last_upstream("response.create")
        self.created(response_id, (create.get("response") or {}).get("metadata"))

    def delta(self, response_id: str, data: bytes, item_id: str = "item_a") -> None:
        import base64

        self.up("response.output_audio.delta", response_id=response_id, item_id=item_id, output_index=0,
                content_index=0, delta=base64.b64encode(data).decode())

    def done(self, response_id: str, status: str = "completed", **details: Any) -> None:
        self.up("response.done", response={"id": response_id, "status": status,
                                           "status_details": details or None})

    def call(self, response_id: str, call_id: str, name: str = "get_weather", arguments: str = "{}") -> None:
        self.up("response.function_call_arguments.done", response_id=response_id, item_id=f"item_{call_id}",
                output_index=0, call_id=call_id, name=name, arguments=arguments)

    # --- reading
    def upstream_types(self) -> list[str]:
        return [event["type"] for event in self.upstream]

    def client_types(self) -> list[str]:
        return [m["type"] if isinstance(m, dict) else "<audio>" for m in self.client]

    def last_upstream(self, event_type: str) -> dict[str, Any]:
        return [event for event in self.upstream if event["type"] == event_type][-1]

    def of_type(self, message_type: str) -> list[dict[str, Any]]:
        return [m for m in self.client if isinstance(m, dict) and m["type"] == message_type]

    def clear(self) -> None:
        self.upstream.clear()
        self.client.clear()
