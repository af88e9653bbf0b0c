"""The load generator: N voice sessions at live pace (one asyncio process).

Each session connects, sends Settings (linear16 at 24 kHz both ways, so the
proxy passes audio through without resampling), waits for SettingsApplied,
then, once every session is ready, sends one stamped 20 ms frame every 20 ms
for the duration. Sessions are spread over the 20 ms period. Every audio
frame received back gives the upstream-to-client latency.

`--direct` is the floor: the same load speaks OpenAI events straight to the
fake upstream (appends out, deltas in), with no proxy in between.

A wss:// `--url` connects with TLS (trusting `--ca`), as a client of a
proxy that serves wss:// does.

Writes a JSON summary to `--out` and the latencies to `--out`.lat.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import ssl
from array import array
from urllib.parse import urlsplit

from proxy.testing import DEFAULT_SETTINGS

from . import wsraw
from .common import (
    FILLER,
    FILLER_B64,
    LAST,
    SLOTS,
    STAMP,
    STAMP_B64,
    STAMP_SIZE,
    Pacer,
    a2b,
    b2a,
    cpu_seconds,
    frames_for,
    machine_busy_seconds,
    monotonic_ns,
    own_cpu_seconds,
    pin,
)

SETTINGS = json.dumps(DEFAULT_SETTINGS).encode()  # linear16 24 kHz both ways: no resampling
SESSION_UPDATE = json.dumps(
    {"type": "session.update", "event_id": "e0", "session": {"type": "realtime", "instructions": "benchmark"}}
).encode()

# A client binary frame of FRAME_BYTES: header, 16-bit length, zero mask.
BINARY_HEAD = bytes((0x80 | wsraw.BINARY, 0x80 | 126)) + (STAMP_SIZE + len(FILLER)).to_bytes(2, "big") + b"\0\0\0\0"
DELTA_KEY = b'"delta":"'
DELTA_PREFIX = b'{"type":"response.output_audio.delta"'


class Run:
    def __init__(self, sessions: int, frames: int, direct: bool) -> None:
        self.frames = frames
        self.direct = direct
        self.ready = 0
        self.all_ready = asyncio.Event()
        self.sessions_total = sessions
        self.sent = 0
        self.received = 0
        self.errors: dict[str, int] = {}
        self.latency = array("q")  # upstream -> client, ns
        self.last_receive_ns = 0
        self.slots: list[list[Session]] = [[] for _ in range(SLOTS)]
        self.finished_senders = 0
        self.all_sent = asyncio.Event()

    def error(self, kind: str) -> None:
        self.errors[kind] = self.errors.get(kind, 0) + 1

    def tick(self, slot: int) -> None:
        for session in self.slots[slot]:
            session.send_frame()


class Session(asyncio.Protocol):
    def __init__(self, run: Run, index: int, host: str, port: int, path: str) -> None:
        self.run = run
        self.index = index
        self.request, self.accept = wsraw.client_handshake(host, port, path)
        self.transport: asyncio.Transport | None = None
        self.head = b""
        self.handshaken = False
        self.ready = False
        self.reader = wsraw.FrameReader()
        self.seq = 0
        self.closed = asyncio.get_running_loop().create_future()
        self.close_code: int | None = None
        self.append_prefix = b'{"type":"input_audio_buffer.append","event_id":"e' + str(index).encode() + b'","audio":"'

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport = transport  # type: ignore[assignment]
        transport.write(self.request)  # type: ignore[attr-defined]

    def connection_lost(self, exc: Exception | None) -> None:
        if self.seq < self.run.frames and self.ready:
            self.run.error("closed while streaming")
        if not self.closed.done():
            self.closed.set_result(None)

    def data_received(self, data: bytes) -> None:
        if not self.handshaken:
            self.head += data
            end = self.head.find(b"\r\n\r\n")
            if end < 0:
                return
            head, data = self.head[:end], self.head[end + 4 :]
            self.head = b""
            if not head.startswith(b"HTTP/1.1 101") or self.accept not in head:
                self.run.error("handshake " + head.split(b"\r\n")[0].decode(errors="replace"))
                self.transport.close()
                return
            self.handshaken = True
            self.send_text(SESSION_UPDATE if self.run.direct else SETTINGS)
            if not data:
                return
        now = monotonic_ns()
        run = self.run
        for opcode, payload in self.reader.feed(data):
            if opcode == wsraw.BINARY:
                run.received += 1
                run.latency.append(now - STAMP.unpack_from(payload)[2])
                run.last_receive_ns = now
            elif opcode == wsraw.TEXT:
                if run.direct and payload.startswith(DELTA_PREFIX):
                    start = payload.find(DELTA_KEY) + len(DELTA_KEY)
                    run.received += 1
                    run.latency.append(now - STAMP.unpack(a2b(payload[start : start + STAMP_B64]))[2])
                    run.last_receive_ns = now
                else:
                    self.on_message(json.loads(payload))
            elif opcode == wsraw.CLOSE:
                self.close_code = int.from_bytes(payload[:2], "big") if len(payload) >= 2 else 1005
                if self.seq < run.frames:
                    run.error(f"closed {self.close_code} {payload[2:].decode(errors='replace')}")
                self.transport.write(wsraw.close_frame(self.close_code, masked=True))
                self.transport.close()
            elif opcode == wsraw.PING:
                self.transport.write(wsraw.frame(wsraw.PONG, payload, masked=True))

    def on_message(self, message: dict) -> None:
        kind = message.get("type")
        if kind in ("SettingsApplied", "session.updated") and not self.ready:
            self.ready = True
            run = self.run
            run.ready += 1
            if run.ready == run.sessions_total:
                run.all_ready.set()
        elif kind in ("Error", "error"):
            self.run.error(f"Error {message.get('code') or message.get('error', {}).get('code')}")

    def send_frame(self) -> None:
        run = self.run
        if self.seq >= run.frames or self.transport is None or self.transport.is_closing():
            return
        flags = LAST if self.seq == run.frames - 1 else 0
        stamp = STAMP.pack(self.index, self.seq, monotonic_ns(), flags)
        if run.direct:
            payload = self.append_prefix + b2a(stamp, newline=False) + FILLER_B64 + b'"}'
            self.transport.write(wsraw.frame(wsraw.TEXT, payload, masked=True))
        else:
            self.transport.write(BINARY_HEAD + stamp + FILLER)
        self.seq += 1
        run.sent += 1
        if self.seq == run.frames:
            run.finished_senders += 1
            if run.finished_senders == run.sessions_total:
                run.all_sent.set()

    def send_text(self, payload: bytes) -> None:
        self.transport.write(wsraw.frame(wsraw.TEXT, payload, masked=True))

    def close(self) -> None:
        if self.transport is not None and not self.transport.is_closing():
            self.transport.write(wsraw.close_frame(1000, masked=True))


def watch(pids: list[int]) -> float:
    total = 0.0
    for pid in pids:
        try:
            total += cpu_seconds(pid)
        except OSError:
            pass
    return total


async def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--url", required=True, help="ws://host:port/path of the proxy (or the fake upstream)")
    parser.add_argument("--sessions", type=int, required=True)
    parser.add_argument("--duration", type=float, required=True, help="seconds of audio per session")
    parser.add_argument("--direct", action="store_true", help="speak OpenAI events to the fake upstream (the floor)")
    parser.add_argument("--proxy-pids", default="", help="measure these processes' CPU over the audio window")
    parser.add_argument("--upstream-pid", type=int, default=0)
    parser.add_argument("--setup-timeout", type=float, default=60.0)
    parser.add_argument("--drain-limit", type=float, default=60.0, help="longest wait for late audio, seconds")
    parser.add_argument("--out", required=True)
    parser.add_argument("--cpus", default="")
    parser.add_argument("--ca", default=None, help="for a wss:// URL: trust this CA file (PEM)")
    args = parser.parse_args(argv)
    pin({int(c) for c in args.cpus.split(",") if c})
    url = urlsplit(args.url)
    path = url.path + (f"?{url.query}" if url.query else "")
    frames = frames_for(args.duration)
    loop = asyncio.get_running_loop()
    run = Run(args.sessions, frames, args.direct)
    proxy_pids = [int(p) for p in args.proxy_pids.split(",") if p]
    tls = None
    if url.scheme == "wss":
        tls = ssl.create_default_context(cafile=args.ca)  # one context for every session

    sessions: list[Session] = []
    connecting = asyncio.Semaphore(64)

    async def open_session(index: int) -> None:
        async with connecting:
            try:
                _, session = await loop.create_connection(
                    lambda: Session(run, index, url.hostname, url.port, path), url.hostname, url.port, ssl=tls
                )
            except OSError as error:
                run.error(f"connect {type(error).__name__}")
                run.sessions_total -= 1
                return
            sessions.append(session)

    setup_started = monotonic_ns()
    await asyncio.gather(*(open_session(i) for i in range(args.sessions)))
    try:
        await asyncio.wait_for(run.all_ready.wait(), args.setup_timeout)
    except TimeoutError:
        run.error("setup timeout")
    setup_s = (monotonic_ns() - setup_started) / 1e9
    streaming = [session for session in sessions if session.ready]
    run.sessions_total = len(streaming)
    for position, session in enumerate(streaming):
        run.slots[position % SLOTS].append(session)

    cpu_before = watch(proxy_pids)
    upstream_before = watch([args.upstream_pid]) if args.upstream_pid else 0.0
    own_before = own_cpu_seconds()
    machine_before = machine_busy_seconds()
    window_start = monotonic_ns()
    pacer = Pacer(loop, run.tick)
    if streaming:
        pacer.start()
        await run.all_sent.wait()
    pacer.stop()
    window_s = (monotonic_ns() - window_start) / 1e9
    cpu_window = watch(proxy_pids) - cpu_before
    upstream_window = (watch([args.upstream_pid]) - upstream_before) if args.upstream_pid else 0.0
    own_window = own_cpu_seconds() - own_before
    machine_window = machine_busy_seconds() - machine_before

    # Drain: the reply is as long as the call. Wait for all of it while it
    # still flows (an overloaded proxy may be seconds behind), so only what
    # never arrives counts as lost.
    expected = frames * len(streaming)
    drain_deadline = monotonic_ns() + int(args.drain_limit * 1e9)
    run.last_receive_ns = monotonic_ns()
    while (
        run.received < expected
        and monotonic_ns() < drain_deadline
        and monotonic_ns() - run.last_receive_ns < 2_000_000_000
    ):
        await asyncio.sleep(0.02)
    drain_s = (monotonic_ns() - window_start) / 1e9 - window_s
    for session in sessions:
        session.close()
    try:
        await asyncio.wait_for(asyncio.gather(*(s.closed for s in sessions)), 5)
    except TimeoutError:
        for session in sessions:
            if session.transport is not None:
                session.transport.abort()

    run.latency.tofile(open(args.out + ".lat", "wb"))
    with open(args.out, "w") as file:
        json.dump(
            {
                "sessions": args.sessions,
                "streaming": len(streaming),
                "frames_per_session": frames,
                "sent": run.sent,
                "received": run.received,
                "errors": run.errors,
                "setup_s": setup_s,
                "window_s": window_s,
                "drain_s": drain_s,
                "proxy_cpu_s": cpu_window,
                "upstream_cpu_s": upstream_window,
                "loadgen_cpu_s": own_window,
                "machine_busy_s": machine_window,
            },
            file,
        )


if __name__ == "__main__":
    asyncio.run(main())
