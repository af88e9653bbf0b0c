"""A small Deepgram Voice Agent client for tests and quick checks.

    async with open_agent_client(url) as client:
        await client.send({"type": "Settings", ...})
        await client.next("SettingsApplied")

Everything received is kept in order in `received` (binary frames as bytes),
so a test can check the order a turn arrived in.
"""

from __future__ import annotations

import json
from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager
from typing import Any

import trio
from trio_websocket import ConnectionClosed, WebSocketConnection, open_websocket_url

DEFAULT_SETTINGS: dict[str, Any] = {
    "type": "Settings",
    "audio": {
        "input": {"encoding": "linear16", "sample_rate": 24000},
        "output": {"encoding": "linear16", "sample_rate": 24000, "container": "none"},
    },
    "agent": {
        "listen": {"provider": {"type": "deepgram", "model": "nova-3"}},
        "think": {"provider": {"type": "open_ai", "model": "gpt-4o-mini"}, "prompt": "You are a helpful agent."},
        "speak": {"provider": {"type": "open_ai", "model": "tts-1", "voice": "alloy"}},
    },
}


class AgentClient:
    def __init__(self, socket: WebSocketConnection, validate: Callable[[dict[str, Any]], None] | None = None):
        self.socket = socket
        self.validate = validate
        self.received: list[dict[str, Any] | bytes] = []
        self.validation_errors: list[str] = []
        self.close_code: int | None = None
        self.close_reason: str | None = None
        self._consumed: dict[str, int] = {}
        self._changed = trio.Event()

    @property
    def audio(self) -> bytes:
        return b"".join(frame for frame in self.received if isinstance(frame, bytes))

    def messages(self, message_type: str | None = None) -> list[dict[str, Any]]:
        return [m for m in self.received if isinstance(m, dict) and (message_type is None or m.get("type") == message_type)]

    def types(self) -> list[str]:
        """The order of everything received, binary frames as "<audio>"."""
        return [m["type"] if isinstance(m, dict) else "<audio>" for m in self.received]

    async def send(self, message: dict[str, Any]) -> None:
        await self.socket.send_message(json.dumps(message))

    async def send_text(self, text: str) -> None:
        await self.socket.send_message(text)

    async def send_audio(self, data: bytes) -> None:
        await self.socket.send_message(data)

    async def settings(self, settings: dict[str, Any] | None = None) -> None:
        await self.send(settings or DEFAULT_SETTINGS)

    async def next(self, message_type: str) -> dict[str, Any]:
        """The next message of `message_type` not yet returned; raises if the connection closes first."""
        while True:
            seen = self._consumed.get(message_type, 0)
            matching = self.messages(message_type)
            if len(matching) > seen:
                self._consumed[message_type] = seen + 1
                return matching[seen]
            if self.close_code is not None:
                raise ConnectionClosed(None)
            await self._changed.wait()

    async def wait_closed(self) -> int:
        while self.close_code is None:
            await self._changed.wait()
        return self.close_code

    async def wait_audio(self, size: int) -> bytes:
        while len(self.audio) < size:
            if self.close_code is not None:
                raise ConnectionClosed(None)
            await self._changed.wait()
        return self.audio

    async def _read(self) -> None:
        try:
            while True:
                frame = await self.socket.get_message()
                if isinstance(frame, bytes):
                    self.received.append(frame)
                else:
                    message = json.loads(frame)
                    if self.validate is not None:
                        try:
                            self.validate(message)
                        except Exception as error:
                            self.validation_errors.append(f"{message.get('type')}: {error}")
                    self.received.append(message)
                self._notify()
        except ConnectionClosed as closed:
            self.close_code = closed.reason.code if closed.reason else 1006
            self.close_reason = closed.reason.reason if closed.reason else None
            self._notify()

    def _notify(self) -> None:
        event, self._changed = self._changed, trio.Event()
        event.set()


@asynccontextmanager
async def open_agent_client(
    url: str,
    *,
    validate: Callable[[dict[str, Any]], None] | None = None,
    subprotocols: list[str] | None = None,
    extra_headers: list[tuple[bytes, bytes]] | None = None,
) -> AsyncIterator[AgentClient]:
    async with open_websocket_url(
        url, subprotocols=subprotocols, extra_headers=extra_headers, max_message_size=64 * 1024 * 1024
    ) as socket:
        client = AgentClient(socket, validate)
        async with trio.open_nursery() as nursery:
            nursery.start_soon(client._read)
            try:
                yield client
            finally:
                nursery.cancel_scope.cancel()
