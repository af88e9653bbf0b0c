"""Opening the proxy's WebSocket connections: the accept loop and the client handshake.

Both handshakes are wsproto's sans-I/O `H11Handshake` (h11 underneath) driven
over a `Transport` (proxy/ws/transport.py); once open, the connection is a
`WebSocket` (proxy/ws/socket.py). The request object offers what the server
needs to decide (path, headers, proposed subprotocols; P2.7-P2.10) and to
answer (accept with a subprotocol, or reject with a status and a body).
"""

from __future__ import annotations

import logging
import ssl
from collections.abc import Awaitable, Callable, Sequence
from typing import Any

import trio
from wsproto import ConnectionType
from wsproto.events import AcceptConnection, RejectConnection, RejectData, Request
from wsproto.handshake import H11Handshake
from wsproto.utilities import RemoteProtocolError

from .codec import FrameCodec
from .socket import WebSocket
from .transport import Transport, TransportBroken, transport_for

# TLS (issue 9): proxy/tls.py plugs into the transport interface.
from ..tls import TlsTransport

log = logging.getLogger("proxy")


class HandshakeError(Exception):
    """The opening handshake failed: the peer went away or answered something else."""


class ConnectionRejected(HandshakeError):
    """The server answered the upgrade with an HTTP status other than 101."""

    def __init__(self, status_code: int, headers: tuple[tuple[bytes, bytes], ...], body: bytes | None) -> None:
        super().__init__(f"HTTP {status_code}")
        self.status_code = status_code
        self.headers = headers
        self.body = body


def _plain_response(status: int, text: str) -> bytes:
    body = text.encode()
    head = f"HTTP/1.1 {status} Bad Request\r\ncontent-length: {len(body)}\r\nconnection: close\r\n\r\n"
    return head.encode() + body


def _trailing(handshake: H11Handshake) -> bytes:
    """Bytes that came after the HTTP head: the first frames (a server may send at once).

    wsproto keeps them in its h11 connection (h11's public `trailing_data`).
    """
    return bytes(handshake._h11_connection.trailing_data[0])


class UpgradeRequest:
    """A client's upgrade request, before it is accepted or rejected (server side)."""

    def __init__(self, transport: Transport, handshake: H11Handshake, event: Request, max_message_size: int):
        self._transport = transport
        self._handshake = handshake
        self._event = event
        self._max_message_size = max_message_size
        self.answered = False
        self.peer: str | None = None  # the remote IP address, set by the accept loop

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
    ) -> WebSocket:
        """Answer 101; the open WebSocket. Raises TransportBroken if the client went away."""
        self.answered = True
        data = self._handshake.send(AcceptConnection(subprotocol=subprotocol, extra_headers=extra_headers or []))
        await self._transport.send_all(data)
        codec = FrameCodec(client=False, max_message_size=self._max_message_size)
        codec.receive_data(_trailing(self._handshake))
        return WebSocket(self._transport, codec)

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
        try:
            await self._transport.send_all(data)
        finally:
            await self._transport.aclose()


# Given the head of a request that is not a WebSocket upgrade, returns the
# whole HTTP response to send, or None to answer as without it (the playground).
PlainHttp = Callable[[bytes], "bytes | None"]


async def _server_handshake(
    transport: Transport, max_message_size: int, plain_http: PlainHttp | None = None
) -> UpgradeRequest | None:
    """Read the upgrade request; None (after answering 4xx, or `plain_http`'s answer) when it is not one."""
    handshake = H11Handshake(ConnectionType.SERVER)
    head = bytearray()  # what came before the error, for plain_http
    while True:
        try:
            data = await transport.receive()
        except TransportBroken:
            return None
        if not data:
            return None
        if plain_http is not None:
            head += data
        answer = b""
        try:
            handshake.receive_data(data)
            for event in handshake.events():
                if isinstance(event, Request):
                    return UpgradeRequest(transport, handshake, event, max_message_size)
        except RemoteProtocolError as error:
            plain = plain_http(bytes(head)) if plain_http is not None else None
            hint = error.event_hint
            if plain is not None:
                answer = plain
            elif hint is None:
                return None
            else:
                try:
                    answer = handshake.send(hint)
                except RemoteProtocolError:
                    return None
        except UnicodeError:
            # wsproto decodes the Host header as IDNA: `Host: xn--` is not a
            # name. A bad request, not a reason for a traceback.
            answer = _plain_response(400, "malformed Host header")
        try:
            await transport.send_all(answer)
        except TransportBroken:
            pass
        return None


async def serve(
    handler: Callable[[UpgradeRequest], Awaitable[None]],
    listeners: Sequence[trio.abc.Listener[Any]],
    *,
    handler_nursery: trio.Nursery,
    max_message_size: int,
    handshake_timeout: float,
    max_handshakes: int,
    ssl_context: ssl.SSLContext | None = None,
    plain_http: PlainHttp | None = None,
    task_status: trio.TaskStatus[list[Any]] = trio.TASK_STATUS_IGNORED,
) -> None:
    """Accept on `listeners` until cancelled; run `handler(request)` for each upgrade request.

    At most `max_handshakes` connections may be in their opening handshake
    (TLS included) at once, each for at most `handshake_timeout`; one over
    that is closed at once, so connections that never speak cannot take
    every file descriptor. `handler` runs outside that bound. With
    `ssl_context` the connections are wss:// (proxy/tls.py).
    """
    in_handshake = trio.Semaphore(max_handshakes) if max_handshakes else None

    async def connection(stream: trio.abc.Stream) -> None:
        transport: Transport | None = None
        try:
            if in_handshake is not None:
                try:
                    in_handshake.acquire_nowait()
                except trio.WouldBlock:
                    log.warning("too many handshakes in progress; connection closed")
                    return
            request = None
            try:
                with trio.move_on_after(handshake_timeout):
                    if ssl_context is not None:
                        transport = TlsTransport(stream, ssl_context, server_side=True, direction="client")
                        await transport.do_handshake()  # a failure is logged there
                    else:
                        transport = transport_for(stream)
                    request = await _server_handshake(transport, max_message_size, plain_http)
            finally:
                if in_handshake is not None:
                    in_handshake.release()
            if request is not None:
                request.peer = _peer(stream)
                await handler(request)
        except (trio.BrokenResourceError, trio.ClosedResourceError, TransportBroken):
            pass
        except Exception:
            # A broken handshake must not take the listener down with it.
            log.warning("handshake failed", exc_info=True)
        finally:
            with trio.CancelScope(shield=True):
                if transport is not None:
                    await transport.aclose()
                try:
                    await stream.aclose()
                except (trio.BrokenResourceError, trio.ClosedResourceError):
                    pass

    await trio.serve_listeners(connection, list(listeners), handler_nursery=handler_nursery, task_status=task_status)


def listener_port(listener: Any) -> int:
    inner = getattr(listener, "transport_listener", listener)
    return inner.socket.getsockname()[1]


async def connect(
    transport: Transport,
    host: str,
    resource: str,
    *,
    extra_headers: list[tuple[bytes, bytes]] | None = None,
    subprotocols: list[str] | None = None,
    max_message_size: int,
) -> WebSocket:
    """The client half of the handshake on an open transport (TLS already done).

    Raises ConnectionRejected for a non-101 answer (with its status and body),
    HandshakeError if the peer goes away or answers something else. The
    transport is closed unless the WebSocket opens.
    """
    try:
        return await _client_handshake(transport, host, resource, extra_headers, subprotocols, max_message_size)
    except BaseException:
        await transport.aclose()
        raise


async def _client_handshake(
    transport: Transport,
    host: str,
    resource: str,
    extra_headers: list[tuple[bytes, bytes]] | None,
    subprotocols: list[str] | None,
    max_message_size: int,
) -> WebSocket:
    handshake = H11Handshake(ConnectionType.CLIENT)
    request = Request(host=host, target=resource, extra_headers=extra_headers or [], subprotocols=subprotocols or [])
    lost = "the upstream closed the connection during the handshake"
    try:
        await transport.send_all(handshake.send(request))
    except TransportBroken as error:
        raise HandshakeError(lost) from error
    rejected: RejectConnection | None = None
    body = b""
    while True:
        try:
            data = await transport.receive()
        except TransportBroken as error:
            raise HandshakeError(lost) from error
        if not data:
            if rejected is not None:
                raise ConnectionRejected(rejected.status_code, tuple(rejected.headers), body)
            raise HandshakeError(lost)
        try:
            handshake.receive_data(data)
            for event in handshake.events():
                if isinstance(event, AcceptConnection):
                    codec = FrameCodec(client=True, max_message_size=max_message_size)
                    codec.receive_data(_trailing(handshake))
                    return WebSocket(transport, codec)
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


def _peer(stream: trio.abc.Stream) -> str | None:
    """The remote IP address of an accepted connection (None if the socket cannot say)."""
    stream = getattr(stream, "transport_stream", stream)  # a trio.SSLStream's TCP stream
    try:
        return str(stream.socket.getpeername()[0])
    except (AttributeError, OSError):
        return None
