"""What one WebSocket message costs in CPU over TLS, by transport (one process, one core).

    python -m bench.tls_cost [--messages 5000]

The proxy's own WebSocket (`proxy.ws.socket.WebSocket`) on both ends of a
loopback connection, a client and a server in one Trio process, bouncing a
960-byte binary message; each round trip is four operations (send and
receive on each side). Transports:

- plain TCP (`trio.SocketStream`): the floor;
- Trio's `SSLStream` (what the proxy used for wss:// before issue 9), through
  the generic `StreamTransport`;
- `proxy.tls.TlsTransport` (ssl.SSLObject over MemoryBIO, direct os.read/os.write).

It also times `ssl.create_default_context()` (what every upstream connect
used to run) and prints the CPU time of each, from `time.process_time`,
which other work on the machine does not inflate the way it does wall time.
"""

from __future__ import annotations

import argparse
import ssl
import time

import trio
import trustme

from proxy.tls import TlsTransport
from proxy.ws.codec import FrameCodec
from proxy.ws.socket import WebSocket
from proxy.ws.transport import Transport, transport_for

PAYLOAD = b"\x01" * 960


async def connected_pair(kind: str, ca: trustme.CA) -> tuple[Transport, Transport]:
    listeners = await trio.open_tcp_listeners(0, host="127.0.0.1")
    port = listeners[0].socket.getsockname()[1]
    client_tcp = await trio.open_tcp_stream("127.0.0.1", port)
    server_tcp = await listeners[0].accept()
    await listeners[0].aclose()
    if kind == "plain":
        return transport_for(client_tcp), transport_for(server_tcp)
    server_context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    ca.issue_cert("127.0.0.1").configure_cert(server_context)
    client_context = ssl.create_default_context()
    ca.configure_trust(client_context)
    if kind == "trio.SSLStream":
        client = trio.SSLStream(client_tcp, client_context, server_hostname="127.0.0.1", https_compatible=True)
        server = trio.SSLStream(server_tcp, server_context, server_side=True, https_compatible=True)
    else:
        client = TlsTransport(client_tcp, client_context, server_side=False, server_hostname="127.0.0.1")
        server = TlsTransport(server_tcp, server_context, server_side=True, direction="client")
    async with trio.open_nursery() as nursery:
        nursery.start_soon(client.do_handshake)
        nursery.start_soon(server.do_handshake)
    if kind == "trio.SSLStream":
        return transport_for(client), transport_for(server)
    return client, server


async def round_trips(kind: str, count: int, ca: trustme.CA) -> float:
    client_transport, server_transport = await connected_pair(kind, ca)
    client = WebSocket(client_transport, FrameCodec(client=True, max_message_size=1 << 20))
    server = WebSocket(server_transport, FrameCodec(client=False, max_message_size=1 << 20))

    async def echo() -> None:
        while True:
            await server.send_message(await server.get_message())

    async with trio.open_nursery() as nursery:
        nursery.start_soon(echo)
        for _ in range(100):  # warm up
            await client.send_message(PAYLOAD)
            await client.get_message()
        started = time.process_time()
        for _ in range(count):
            await client.send_message(PAYLOAD)
            await client.get_message()
        spent = time.process_time() - started
        nursery.cancel_scope.cancel()
    return spent


def context_cost(repeat: int = 5) -> float:
    best = float("inf")
    for _ in range(repeat):
        started = time.process_time()
        ssl.create_default_context()
        best = min(best, time.process_time() - started)
    return best


async def main(count: int) -> None:
    ca = trustme.CA()
    print(f"ssl.create_default_context(): {context_cost() * 1e3:.1f} ms CPU (best of 5)")
    print(f"{'transport':<20} {'us CPU per operation':>22}")
    for kind in ("plain", "trio.SSLStream", "TlsTransport"):
        spent = await round_trips(kind, count, ca)
        print(f"{kind:<20} {spent / count / 4 * 1e6:>22.1f}")


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--messages", type=int, default=5000)
    trio.run(main, parser.parse_args().messages)
