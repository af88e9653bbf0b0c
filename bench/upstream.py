"""A fast fake OpenAI Realtime server for the benchmark (one asyncio process).

Per connection: answers `session.update` with `session.updated` and sends one
`response.created`; from the first `input_audio_buffer.append` on it streams
one 20 ms `response.output_audio.delta` every 20 ms (stamped, see
`bench.common`), `--frames` of them, then `response.done`.
Every append's stamp gives the client-to-upstream latency.

With `--cert`/`--key` it serves wss:// (TLS, as the real OpenAI does).

Prints `{"port": N}` on stdout once listening; when stdin closes it writes its
counts and latencies to `--out` and exits.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import ssl
import sys
from array import array

from . import wsraw
from .common import FILLER_B64, SLOTS, STAMP, STAMP_B64, Pacer, a2b, b2a, monotonic_ns, pin

APPEND_PREFIX = b'{"type":"input_audio_buffer.append"'
AUDIO_KEY = b'"audio":"'
HEAD_BYTES = 160  # a multiple of 4, so the mask lines up; holds the event id and the stamp


class Stats:
    def __init__(self) -> None:
        self.connections = 0
        self.received = 0  # appends
        self.sent = 0  # deltas
        self.errors = 0
        self.latency = array("q")  # client -> upstream, ns


class Upstream(asyncio.Protocol):
    """One connection from the proxy (or, for the floor, from the load generator)."""

    def __init__(self, server: Server) -> None:
        self.server = server
        self.index = server.next_index()
        self.transport: asyncio.Transport | None = None
        self.handshaken = False
        self.head = b""
        self.reader = wsraw.FrameReader(peek=self.peek_append)
        self.streaming = False
        self.started = False
        self.slot = 0
        self.seq = 0
        self.event_prefix = (
            b'{"type":"response.output_audio.delta","response_id":"resp_' + str(self.index).encode()
            + b'","item_id":"item_' + str(self.index).encode() + b'","output_index":0,"content_index":0,"delta":"'
        )

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport = transport  # type: ignore[assignment]
        self.server.stats.connections += 1

    def connection_lost(self, exc: Exception | None) -> None:
        self.server.stop_streaming(self)

    def data_received(self, data: bytes) -> None:
        if not self.handshaken:
            self.head += data
            end = self.head.find(b"\r\n\r\n")
            if end < 0:
                return
            answer = wsraw.server_handshake_answer(self.head[:end])
            data, self.head = self.head[end + 4 :], b""
            if answer is None:
                self.transport.close()
                return
            self.handshaken = True
            self.transport.write(answer)
            self.send_text(b'{"type":"session.created","event_id":"ev0","session":{"type":"realtime"}}')
            if not data:
                return
        now = monotonic_ns()
        for opcode, payload in self.reader.feed(data):
            if opcode == wsraw.TEXT:
                if payload.startswith(APPEND_PREFIX):
                    self.on_append(payload, now)
                else:
                    self.on_event(json.loads(payload))
            elif opcode == wsraw.CLOSE:
                self.transport.write(wsraw.frame(wsraw.CLOSE, payload[:2], masked=False))
                self.transport.close()
                self.server.stop_streaming(self)
            elif opcode == wsraw.PING:
                self.transport.write(wsraw.frame(wsraw.PONG, payload, masked=False))
            elif opcode == wsraw.BINARY:
                self.server.stats.errors += 1  # P1.3: the proxy must send text only

    def peek_append(self, masked: bytes, key: bytes) -> bool:
        """An append from the proxy: unmask only its head, where the stamp is."""
        head = wsraw.unmask(masked[:HEAD_BYTES], key)
        if not head.startswith(APPEND_PREFIX):
            return False
        start = head.find(AUDIO_KEY)
        if start < 0 or start + len(AUDIO_KEY) + STAMP_B64 > len(head):
            return False
        self.on_append(head, monotonic_ns())
        return True

    def on_append(self, payload: bytes, now: int) -> None:
        start = payload.find(AUDIO_KEY) + len(AUDIO_KEY)
        _session, _seq, sent_ns, _flags = STAMP.unpack(a2b(payload[start : start + STAMP_B64]))
        stats = self.server.stats
        stats.received += 1
        stats.latency.append(now - sent_ns)
        if not self.started:
            # The reply starts with the caller's audio and, like the caller,
            # sends exactly `frames` frames: the same load both ways.
            self.started = True
            self.server.start_streaming(self)

    def on_event(self, event: dict) -> None:
        kind = event.get("type")
        if kind == "session.update":
            session = event.get("session") or {}
            self.send_text(json.dumps({"type": "session.updated", "event_id": "ev1", "session": session}).encode())
            self.send_text(
                b'{"type":"response.created","event_id":"ev2","response":{"id":"resp_' + str(self.index).encode()
                + b'","object":"realtime.response","status":"in_progress"}}'
            )

    def send_delta(self) -> bool:
        """Send the next delta; False once all were sent (then response.done)."""
        stamp = b2a(STAMP.pack(self.index, self.seq, monotonic_ns(), 0), newline=False)
        self.seq += 1
        self.send_text(self.event_prefix + stamp + FILLER_B64 + b'"}')
        if self.seq < self.server.frames:
            return True
        self.send_text(
            b'{"type":"response.done","event_id":"evd","response":{"id":"resp_' + str(self.index).encode()
            + b'","object":"realtime.response","status":"completed"}}'
        )
        return False

    def send_text(self, payload: bytes) -> None:
        if self.transport is not None and not self.transport.is_closing():
            self.transport.write(wsraw.frame(wsraw.TEXT, payload, masked=False))


class Server:
    def __init__(self, frames: int) -> None:
        self.frames = frames
        self.stats = Stats()
        self.slots: list[set[Upstream]] = [set() for _ in range(SLOTS)]
        self._index = 0
        self.pacer: Pacer | None = None

    def next_index(self) -> int:
        self._index += 1
        return self._index

    def start_streaming(self, connection: Upstream) -> None:
        connection.streaming = True
        # Start in the current slot: the client's frames arrive in its slot.
        slot = (self.pacer.count if self.pacer else 0) % SLOTS
        self.slots[slot].add(connection)
        connection.slot = slot

    def stop_streaming(self, connection: Upstream) -> None:
        if connection.streaming:
            connection.streaming = False
            self.slots[connection.slot].discard(connection)

    def tick(self, slot: int) -> None:
        connections = self.slots[slot]
        done = [connection for connection in connections if not connection.send_delta()]
        self.stats.sent += len(connections)
        for connection in done:
            self.stop_streaming(connection)


async def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, default=0)
    parser.add_argument("--out", required=True, help="where to write the results (JSON + .lat latencies)")
    parser.add_argument("--cpus", default="", help="CPUs to pin to, comma-separated")
    parser.add_argument("--frames", type=int, required=True, help="audio deltas to stream per connection")
    parser.add_argument("--cert", default=None, help="serve wss:// with this certificate chain (PEM)")
    parser.add_argument("--key", default=None, help="the certificate's private key (PEM)")
    args = parser.parse_args(argv)
    pin({int(c) for c in args.cpus.split(",") if c})
    loop = asyncio.get_running_loop()
    server = Server(args.frames)
    server.pacer = Pacer(loop, server.tick)
    tls = None
    if args.cert:
        # Like OpenAI: wss:// only, with a certificate the proxy has to verify.
        tls = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
        tls.load_cert_chain(args.cert, args.key)
    listener = await loop.create_server(lambda: Upstream(server), args.host, args.port, backlog=4096, ssl=tls)
    port = listener.sockets[0].getsockname()[1]
    server.pacer.start()
    print(json.dumps({"port": port}), flush=True)
    # Run until the orchestrator closes stdin.
    reader = asyncio.StreamReader()
    await loop.connect_read_pipe(lambda: asyncio.StreamReaderProtocol(reader), sys.stdin)
    await reader.read()
    server.pacer.stop()
    listener.close()
    stats = server.stats
    stats.latency.tofile(open(args.out + ".lat", "wb"))
    with open(args.out, "w") as file:
        json.dump(
            {
                "connections": stats.connections,
                "received": stats.received,
                "sent": stats.sent,
                "errors": stats.errors,
            },
            file,
        )


if __name__ == "__main__":
    asyncio.run(main())
