"""Opening the upstream WebSocket (P1.5, P2.3), and saying safely why it failed.

The client is told the kind of failure only (refused, DNS, TLS, rejected,
timeout), never the host: it must not learn where, or what, the backend is
(PROTOCOL.md preamble). The log gets the whole chain of causes.
"""

from __future__ import annotations

import socket
import ssl
from urllib.parse import urlsplit

import trio

from .tls import TlsTransport, upstream_context
from .ws.opening import HandshakeError, connect
from .ws.socket import WebSocket
from .ws.transport import Transport, transport_for

# Upstream events can be large (session.updated echoes the instructions).
UPSTREAM_MAX_MESSAGE = 32 * 1024 * 1024


async def open_upstream(url: str, api_key: str, *, ssl_context: ssl.SSLContext | None = None) -> WebSocket:
    """Connect and upgrade; raises ConnectionRejected (non-101), HandshakeError or OSError.

    `ssl_context` is for wss://; by default the process's one context that
    trusts the system's CAs (`upstream_context`).
    """
    transport, host, resource = await _open_upstream_transport(url, ssl_context)
    return await connect(
        transport,
        host,
        resource,
        extra_headers=[(b"authorization", f"Bearer {api_key}".encode())],  # P1.5
        max_message_size=UPSTREAM_MAX_MESSAGE,
    )


async def _open_upstream_transport(url: str, ssl_context: ssl.SSLContext | None) -> tuple[Transport, str, str]:
    """TCP (and TLS) to the upstream; returns (transport, Host header, resource).

    The TLS handshake is done here, before the WebSocket handshake, so a TLS
    failure is reported (and logged) as one, with OpenSSL's reason, instead
    of as a timeout (P2.3).
    """
    parts = urlsplit(url)
    secure = parts.scheme == "wss"
    hostname = parts.hostname or ""
    port = parts.port or (443 if secure else 80)
    resource = (parts.path or "/") + (f"?{parts.query}" if parts.query else "")
    host = f"[{hostname}]" if ":" in hostname else hostname
    if port not in (80, 443):
        host = f"{host}:{port}"
    tcp = await trio.open_tcp_stream(hostname, port)
    if not secure:
        return transport_for(tcp), host, resource
    if ssl_context is None:
        ssl_context = upstream_context(None)
    transport = TlsTransport(tcp, ssl_context, server_side=False, server_hostname=hostname, direction="upstream")
    try:
        await transport.do_handshake()  # a failure is logged there, with OpenSSL's reason
    except BaseException:
        await transport.aclose()
        raise
    return transport, host, resource


def _causes(error: BaseException) -> list[BaseException]:
    """`error`, what caused it, and the members of any exception group among them."""
    seen: list[BaseException] = []
    pending = [error]
    while pending:
        current = pending.pop(0)
        if current is None or any(current is known for known in seen):
            continue
        seen.append(current)
        if isinstance(current, BaseExceptionGroup):
            pending.extend(current.exceptions)
        pending.extend((current.__cause__, current.__context__))
    return seen


def error_chain(error: BaseException) -> str:
    return " <- ".join(f"{type(e).__name__}: {e}" for e in _causes(error) if not isinstance(e, BaseExceptionGroup))


def connect_failure(error: BaseException) -> str:
    """What a client may hear about a failed upstream connect: the kind of
    failure, never the host or address (the client must not learn where, or
    what, the backend is; PROTOCOL.md preamble)."""
    causes = _causes(error)
    kinds = (
        (socket.gaierror, "the upstream host name did not resolve"),
        (ssl.SSLError, "the TLS handshake with the upstream failed"),
        (ConnectionRefusedError, "connection refused"),
        (TimeoutError, "the connection timed out"),
        (HandshakeError, "the WebSocket handshake with the upstream failed"),
    )
    for kind, text in kinds:
        if any(isinstance(cause, kind) for cause in causes):
            return text
    return "the connection failed"
