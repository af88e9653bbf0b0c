"""What one WebSocket message costs in CPU on this machine, by layer (one process, one core).

    python -m bench.ws_cost [--messages 5000]

A client and a server in one Trio process bounce a 960-byte binary message
back and forth; each round trip is four operations (send and receive on each
side). Three stacks:

- trio-websocket (wsproto underneath), as the proxy uses it;
- raw Trio TCP streams, no framing at all: the floor for any Trio design;
- the same streams with a minimal hand-written RFC 6455 framing (header
  build and parse in Python), i.e. what a lean framing layer would cost.

The gap between the first and the third is what replacing the library's data
path could save per operation; the proxy does two such operations per frame
it carries (one receive, one send) plus its own translation.
"""

from __future__ import annotations

import argparse
import struct
import time

import trio
from trio_websocket import connect_websocket_url, serve_websocket

PAYLOAD = b"\x01" * 960


async def trio_websocket_round_trips(count: int) -> float:
    async def echo(request):
        socket = await request.accept()
        while True:
            await socket.send_message(await socket.get_message())

    async with trio.open_nursery() as nursery:
        server = await nursery.start(serve_websocket, echo, "127.0.0.1", 0, None)
        client = await connect_websocket_url(nursery, f"ws://127.0.0.1:{server.port}/", receive_buffer_size=None)
        started = time.process_time()
        for _ in range(count):
            await client.send_message(PAYLOAD)
            await client.get_message()
        spent = time.process_time() - started
        nursery.cancel_scope.cancel()
    return spent


def frame(payload: bytes) -> bytes:
    return struct.pack("!BBH", 0x82, 126, len(payload)) + payload


async def read_frame(stream: trio.SocketStream, buffer: bytearray) -> bytes:
    while True:
        if len(buffer) >= 4:
            length = (buffer[2] << 8) | buffer[3]
            if len(buffer) >= 4 + length:
                payload = bytes(buffer[4 : 4 + length])
                del buffer[: 4 + length]
                return payload
        data = await stream.receive_some(65536)
        if not data:
            raise EOFError
        buffer += data


async def stream_round_trips(count: int, framed: bool) -> float:
    listeners = await trio.open_tcp_listeners(0, host="127.0.0.1")
    port = listeners[0].socket.getsockname()[1]

    async def echo(stream: trio.SocketStream) -> None:
        buffer = bytearray()
        while True:
            if framed:
                await stream.send_all(frame(await read_frame(stream, buffer)))
            else:
                data = await stream.receive_some(65536)
                if not data:
                    return
                await stream.send_all(data)

    async with trio.open_nursery() as nursery:
        nursery.start_soon(trio.serve_listeners, echo, listeners)
        client = await trio.open_tcp_stream("127.0.0.1", port)
        buffer = bytearray()
        started = time.process_time()
        for _ in range(count):
            if framed:
                await client.send_all(frame(PAYLOAD))
                await read_frame(client, buffer)
            else:
                await client.send_all(PAYLOAD)
                received = 0
                while received < len(PAYLOAD):
                    received += len(await client.receive_some(65536))
        spent = time.process_time() - started
        nursery.cancel_scope.cancel()
    return spent


async def main(count: int) -> None:
    results = [
        ("trio-websocket", await trio_websocket_round_trips(count)),
        ("raw Trio stream", await stream_round_trips(count, framed=False)),
        ("Trio stream + minimal framing", await stream_round_trips(count, framed=True)),
    ]
    print(f"{'stack':<32} {'us CPU per operation':>22}")
    for name, spent in results:
        print(f"{name:<32} {spent / count / 4 * 1e6:>22.1f}")


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--messages", type=int, default=5000)
    trio.run(main, parser.parse_args().messages)
