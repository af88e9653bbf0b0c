"""Listening sockets several worker processes can share (SO_REUSEPORT).

A leaf: the server binds through it and the worker supervisor re-exports
it, so neither has to import the other.
"""

from __future__ import annotations

import socket

import trio

LISTEN_BACKLOG = 4096


async def open_shared_listeners(host: str, port: int, backlog: int = LISTEN_BACKLOG) -> list[trio.SocketListener]:
    """Listeners on (host, port) with SO_REUSEPORT set, one per resolved address.

    Like trio.open_tcp_listeners, but every worker can bind the same port.
    """
    addresses = await trio.socket.getaddrinfo(host, port, type=socket.SOCK_STREAM, flags=socket.AI_PASSIVE)
    listeners = []
    seen = set()
    try:
        for family, kind, proto, _, address in addresses:
            if (family, address) in seen:
                continue
            seen.add((family, address))
            sock = trio.socket.socket(family, kind, proto)
            try:
                sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
                sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEPORT, 1)
                if family == socket.AF_INET6:
                    sock.setsockopt(socket.IPPROTO_IPV6, socket.IPV6_V6ONLY, 1)
                await sock.bind(address)
                sock.listen(backlog)
            except BaseException:
                sock.close()
                raise
            listeners.append(trio.SocketListener(sock))
    except BaseException:
        for listener in listeners:
            listener.socket.close()
        raise
    return listeners
