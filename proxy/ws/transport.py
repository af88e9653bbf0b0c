"""What a WebSocket needs from the byte stream under it, and the proxy's two transports.

A transport moves bytes and nothing else; the `WebSocket` (proxy/ws/socket.py)
owns the order of writes. The interface is small so that another transport
(TLS over `ssl.MemoryBIO`, say) slots in without touching the framing:

- `send_nowait(data) -> int`: write what can be written without waiting and
  say how many bytes that was (0 is fine: then `send_all` does the rest);
- `send_all(data)`: write all of it, waiting as needed;
- `receive() -> bytes`: some bytes, waiting as needed; b"" at the end;
- `aclose()`: close; idempotent.

Every failure of the stream under it is `TransportBroken`. A `send_all`
that is cancelled may have written part of `data`: the caller must not
write anything after it (the WebSocket then counts itself broken).
"""

from __future__ import annotations

import os
from typing import Protocol

import trio

RECEIVE_BYTES = 65536


class TransportBroken(Exception):
    """The stream under the WebSocket failed or was closed."""


class Transport(Protocol):
    def send_nowait(self, data: bytes | memoryview) -> int: ...

    async def send_all(self, data: bytes | memoryview) -> None: ...

    async def receive(self) -> bytes: ...

    async def aclose(self) -> None: ...


class SocketTransport:
    """Plain TCP, read and written with direct non-blocking system calls on its descriptor.

    The kernel almost always takes a whole frame at once, so a write is tried
    before Trio is asked to wait; a read after one that emptied the socket
    waits for readiness first, because the next audio frame is ~20 ms away
    (one failing system call saved per message; bench/README.md).
    """

    def __init__(self, stream: trio.SocketStream) -> None:
        self._stream = stream  # owns the socket; closing it wakes any waiter
        self._fd = stream.socket.fileno()
        self._drained = True

    def send_nowait(self, data: bytes | memoryview) -> int:
        fd = self._fd
        if fd < 0:
            raise TransportBroken("closed")
        try:
            return os.write(fd, data)
        except BlockingIOError:
            return 0
        except OSError as error:
            raise TransportBroken(str(error)) from error

    async def send_all(self, data: bytes | memoryview) -> None:
        view = memoryview(data)
        while view:
            sent = self.send_nowait(view)
            view = view[sent:]
            if view:
                try:
                    await trio.lowlevel.wait_writable(self._stream.socket)
                except (trio.ClosedResourceError, OSError, ValueError) as error:
                    raise TransportBroken("closed") from error

    async def receive(self) -> bytes:
        while True:
            try:
                if self._drained:
                    await trio.lowlevel.wait_readable(self._stream.socket)
                else:
                    await trio.lowlevel.checkpoint()
            except (trio.ClosedResourceError, OSError, ValueError) as error:
                raise TransportBroken("closed") from error
            fd = self._fd
            if fd < 0:
                raise TransportBroken("closed")
            try:
                data = os.read(fd, RECEIVE_BYTES)
            except BlockingIOError:
                self._drained = True
                continue
            except OSError as error:
                raise TransportBroken(str(error)) from error
            self._drained = len(data) < RECEIVE_BYTES
            return data

    async def aclose(self) -> None:
        self._fd = -1
        with trio.CancelScope(shield=True):
            try:
                await self._stream.aclose()
            except (trio.BrokenResourceError, trio.ClosedResourceError):
                pass


class StreamTransport:
    """Any Trio stream (trio.SSLStream, test memory streams): every write waits in `send_all`."""

    def __init__(self, stream: trio.abc.Stream) -> None:
        self._stream = stream

    def send_nowait(self, data: bytes | memoryview) -> int:
        return 0

    async def send_all(self, data: bytes | memoryview) -> None:
        try:
            await self._stream.send_all(data)
        except (trio.BrokenResourceError, trio.ClosedResourceError) as error:
            raise TransportBroken(str(error)) from error

    async def receive(self) -> bytes:
        try:
            return await self._stream.receive_some(RECEIVE_BYTES)
        except (trio.BrokenResourceError, trio.ClosedResourceError) as error:
            raise TransportBroken(str(error)) from error

    async def aclose(self) -> None:
        with trio.CancelScope(shield=True):
            try:
                await self._stream.aclose()
            except (trio.BrokenResourceError, trio.ClosedResourceError):
                pass


def transport_for(stream: trio.abc.Stream) -> SocketTransport | StreamTransport:
    """The fastest transport for `stream`: direct system calls on plain TCP."""
    if type(stream) is trio.SocketStream:
        return SocketTransport(stream)
    return StreamTransport(stream)
