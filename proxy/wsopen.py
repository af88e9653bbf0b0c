"""Opening the proxy's WebSocket connections (issue 6): the accept loop and the upstream connect.

Both handshakes are wsproto's sans-I/O `H11Handshake` (h11 underneath) driven
on a Trio stream; once open, the connection is a `FastWebSocket`
(proxy/fastws.py). The request object offers what `ProxyServer` needs to
decide (path, headers, proposed subprotocols; P2.7-P2.10) and to answer
(accept with a subprotocol, or reject with a status and a body).
"""

from __future__ import annotations

import logging
import ssl
from collections.abc import Awaitable, Callable, Sequence
from typing import Any

import trio
from trio_websocket import ConnectionRejected, HandshakeError
from wsproto import ConnectionType
from wsproto.events import AcceptConnection, RejectConnection, RejectData, Request
from wsproto.handshake import H11Handshake
from wsproto.utilities import RemoteProtocolError

from .fastws import RECEIVE_BYTES, FastWebSocket
from .tls import TlsStream

log = logging.getLogger("proxy")



def _trailing(handshake: H11Handshake) -> bytes:
    """Bytes that came after the HTTP head: the first frames (a server may send at once).

    wsproto keeps them in its h11 connection (h11's public `trailing_data`).
    """
    return bytes(handshake._h11_connection.trailing_data[0])


class FastRequest:
    """A client's upgrade request, before it is accepted or rejected (server side)."""

    def __init__(self, stream: trio.abc.Stream, handshake: H11Handshake, event: Request, max_message_size: int):
        self._stream = stream
        self._handshake = handshake
        self._event = event
        self._max_message_size = max_message_size
        self.answered = False

    @property
    def path(self) -> str:
        return self._event.target

    @property
    def headers(self) -> list[tuple[bytes, bytes]]:
        return list(self._event.extra_headers)

    @property
    def proposed_subprotocols(self) -> tuple[str, ...]:
        return tuple(self._event.subprotocols)

    async def accept(
        self, *, subprotocol: str | None = None, extra_headers: list[tuple[bytes, bytes]] | None = None
    ) -> FastWebSocket:
        self.answered = True
        data = self._handshake.send(AcceptConnection(subprotocol=subprotocol, extra_headers=extra_headers or []))
        await self._stream.send_all(data)
        return FastWebSocket(self._stream, client=False, max_message_size=self._max_message_size, buffered=_trailing(self._handshake))

    async def reject(
        self, status_code: int, *, extra_headers: list[tuple[bytes, bytes]] | None = None, body: bytes | None = None
    ) -> None:
        self.answered = True
        headers = list(extra_headers or [])
        if body:
            headers.append((b"content-length", str(len(body)).encode("ascii")))
        data = self._handshake.send(RejectConnection(status_code=status_code, headers=headers, has_body=bool(body)))
        if body:
            data += self._handshake.send(RejectData(data=body))
        await self._stream.send_all(data)
        await self._stream.aclose()


async def _server_handshake(stream: trio.abc.Stream, max_message_size: int) -> FastRequest | None:
    """Read the upgrade request; None (after answering 4xx) when it is not one."""
    handshake = H11Handshake(ConnectionType.SERVER)
    while True:
        try:
            data = await stream.receive_some(RECEIVE_BYTES)
        except (trio.BrokenResourceError, trio.ClosedResourceError):
            return None
        if not data:
            return None
        try:
            handshake.receive_data(data)
            for event in handshake.events():
                if isinstance(event, Request):
                    return FastRequest(stream, handshake, event, max_message_size)
        except RemoteProtocolError as error:
            hint = error.event_hint
            if hint is not None:
                try:
                    await stream.send_all(handshake.send(hint))
                except (trio.BrokenResourceError, trio.ClosedResourceError, RemoteProtocolError):
                    pass
            return None


async def serve_fast(
    handler: Callable[[FastRequest], Awaitable[None]],
    listeners: Sequence[trio.abc.Listener[Any]],
    *,
    handler_nursery: trio.Nursery,
    max_message_size: int,
    connect_timeout: float,
    ssl_context: ssl.SSLContext | None = None,
    task_status: trio.TaskStatus[list[Any]] = trio.TASK_STATUS_IGNORED,
) -> None:
    """Accept on `listeners` until cancelled; run `handler(request)` for each upgrade request.

    With `ssl_context` the connections are wss:// (proxy/tls.py); the TLS
    handshake counts against `connect_timeout` like the HTTP one.
    """

    async def connection(stream: trio.abc.Stream) -> None:
        try:
            request = None
            with trio.move_on_after(connect_timeout):
                if ssl_context is not None:
                    stream = TlsStream(stream, ssl_context, server_side=True, direction="client")
                    await stream.do_handshake()  # a failure is logged there
                request = await _server_handshake(stream, max_message_size)
            if request is not None:
                await handler(request)
        except (trio.BrokenResourceError, trio.ClosedResourceError):
            pass
        except Exception:
            # A broken handshake must not take the listener down with it.
            log.warning("handshake failed", exc_info=True)
        finally:
            with trio.CancelScope(shield=True):
                try:
                    await stream.aclose()
                except (trio.BrokenResourceError, trio.ClosedResourceError):
                    pass

    await trio.serve_listeners(connection, list(listeners), handler_nursery=handler_nursery, task_status=task_status)


def listener_port(listener: Any) -> int:
    inner = getattr(listener, "transport_listener", listener)
    return inner.socket.getsockname()[1]


async def connect_fast(
    stream: trio.abc.Stream,
    host: str,
    resource: str,
    *,
    extra_headers: list[tuple[bytes, bytes]] | None = None,
    subprotocols: list[str] | None = None,
    max_message_size: int,
) -> FastWebSocket:
    """The client half of the handshake on an open stream (TLS already done).

    Raises ConnectionRejected for a non-101 answer (with its status and body),
    HandshakeError if the peer goes away or answers something else.
    """
    try:
        return await _client_handshake(stream, host, resource, extra_headers, subprotocols, max_message_size)
    except BaseException:
        with trio.CancelScope(shield=True):
            try:
                await stream.aclose()
            except (trio.BrokenResourceError, trio.ClosedResourceError):
                pass
        raise


async def _client_handshake(
    stream: trio.abc.Stream,
    host: str,
    resource: str,
    extra_headers: list[tuple[bytes, bytes]] | None,
    subprotocols: list[str] | None,
    max_message_size: int,
) -> FastWebSocket:
    handshake = H11Handshake(ConnectionType.CLIENT)
    request = Request(host=host, target=resource, extra_headers=extra_headers or [], subprotocols=subprotocols or [])
    await stream.send_all(handshake.send(request))
    rejected: RejectConnection | None = None
    body = b""
    while True:
        try:
            data = await stream.receive_some(RECEIVE_BYTES)
        except trio.BrokenResourceError as error:
            raise HandshakeError("the upstream closed the connection during the handshake") from error
        if not data:
            if rejected is not None:
                raise ConnectionRejected(rejected.status_code, tuple(rejected.headers), body)
            raise HandshakeError("the upstream closed the connection during the handshake")
        try:
            handshake.receive_data(data)
            for event in handshake.events():
                if isinstance(event, AcceptConnection):
                    return FastWebSocket(
                        stream, client=True, max_message_size=max_message_size, buffered=_trailing(handshake)
                    )
                if isinstance(event, RejectConnection):
                    rejected = event
                    if not event.has_body:
                        raise ConnectionRejected(event.status_code, tuple(event.headers), None)
                elif isinstance(event, RejectData):
                    body += event.data
                    if event.body_finished and rejected is not None:
                        raise ConnectionRejected(rejected.status_code, tuple(rejected.headers), body)
        except RemoteProtocolError as error:
            raise HandshakeError(f"bad handshake answer: {error}") from error
