"""Dead peers and strangers: keepalive pings, the idle deadline, handshake and connection
bounds, bad Host headers. Real sockets on loopback against the in-process proxy."""

from __future__ import annotations

import json
import os
import struct

import pytest
import trio
import trio.testing
from trio_websocket import ConnectionClosed, open_websocket_url

UPGRADE = (
    "GET /openai HTTP/1.1\r\nHost: {host}\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n"
    "Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\nSec-WebSocket-Version: 13\r\n\r\n"
)


async def raw_upgrade(port: int, host: str = "127.0.0.1") -> tuple[trio.SocketStream, bytes, bytes]:
    """A hand-written upgrade request; the stream, the HTTP head answered, and what followed it."""
    stream = await trio.open_tcp_stream("127.0.0.1", port)
    await stream.send_all(UPGRADE.format(host=host).encode())
    data = b""
    while b"\r\n\r\n" not in data:
        chunk = await stream.receive_some(65536)
        if not chunk:
            break
        data += chunk
    head, _, rest = data.partition(b"\r\n\r\n")
    return stream, head, rest


async def read_to_end(stream: trio.abc.Stream, data: bytes = b"") -> bytes:
    while chunk := await stream.receive_some(65536):
        data += chunk
    return data


def server_frames(data: bytes) -> list[tuple[int, bytes]]:
    """Unmasked frames as the proxy sends them."""
    frames = []
    while len(data) >= 2:
        size, offset = data[1] & 0x7F, 2
        if size == 126:
            size, offset = int.from_bytes(data[2:4], "big"), 4
        frames.append((data[0] & 0x0F, data[offset : offset + size]))
        data = data[offset + size :]
    return frames


async def test_a_client_that_does_not_answer_pings_is_closed_with_1011(proxy_factory, fake) -> None:
    """A peer whose TCP vanished without a FIN sends nothing and answers nothing."""
    proxy = await proxy_factory(client_ping_interval_s=0.3, client_ping_timeout_s=0.3)
    with trio.fail_after(10):
        stream, head, rest = await raw_upgrade(proxy.server.port)
        assert head.startswith(b"HTTP/1.1 101")
        upstream = await fake.next_connection()
        frames = server_frames(await read_to_end(stream, rest))  # never answering the ping
        while proxy.server.connections:
            await trio.sleep(0.01)
    opcodes = [opcode for opcode, _ in frames]
    assert 0x9 in opcodes  # pinged
    assert frames[-1][0] == 0x8 and struct.unpack("!H", frames[-1][1][:2])[0] == 1011
    assert upstream.closed == 1000  # P2.5: the paid upstream session ends with it


async def test_a_silent_client_that_answers_pings_stays_until_the_idle_deadline(proxy_factory, fake) -> None:
    proxy = await proxy_factory(client_ping_interval_s=0.1, client_ping_timeout_s=0.5, client_idle_timeout_s=1.5)
    with trio.fail_after(10):
        async with open_websocket_url(proxy.url) as client:  # answers pings by itself
            assert json.loads(await client.get_message())["type"] == "Welcome"
            await fake.next_connection()
            started = trio.current_time()
            with pytest.raises(ConnectionClosed) as closed:
                await client.get_message()
            waited = trio.current_time() - started
    assert closed.value.reason.code == 1000 and "no message" in closed.value.reason.reason
    # Pinged many times (every 0.1 s) and answered every time: it lasted to the idle deadline.
    assert waited >= 1.4


async def test_messages_keep_a_client_from_the_idle_deadline(proxy_factory, fake) -> None:
    proxy = await proxy_factory(client_ping_interval_s=0, client_idle_timeout_s=0.5)
    with trio.fail_after(10):
        async with open_websocket_url(proxy.url) as client:
            await client.get_message()
            for _ in range(8):  # 1.6 s in all, each gap shorter than the deadline
                await trio.sleep(0.2)
                await client.send_message(json.dumps({"type": "KeepAlive"}))
            assert proxy.server.connections
            with pytest.raises(ConnectionClosed) as closed:
                await client.get_message()  # now silent: closed
    assert closed.value.reason.code == 1000


async def test_python_websockets_clients_get_pongs_and_answer_our_pings(proxy_factory, fake) -> None:
    """Python websockets clients (deepgram-sdk's) ping every 20 s and close with 1011 when
    no pong comes within their timeout; they answer ours too. Both at short intervals here."""
    sync_client = pytest.importorskip("websockets.sync.client")
    proxy = await proxy_factory(client_ping_interval_s=0.2, client_ping_timeout_s=1.0)

    def talk() -> tuple[str, bool]:
        with sync_client.connect(proxy.url, ping_interval=0.1, ping_timeout=1.0, open_timeout=5) as socket:
            welcome = json.loads(socket.recv(timeout=5))["type"]
            answered = socket.ping(b"explicit").wait(timeout=2)
            # Silent for 2.5 s: the proxy pings it every 0.2 s, it pings us every 0.1 s;
            # either side missing a pong would close the connection.
            with pytest.raises(TimeoutError):
                socket.recv(timeout=2.5)
            socket.send(json.dumps({"type": "KeepAlive"}))
            return welcome, answered

    with trio.fail_after(20):
        welcome, answered = await trio.to_thread.run_sync(talk)
    assert welcome == "Welcome" and answered


async def test_over_max_connections_is_atomic(proxy_factory, fake) -> None:
    """P8 OPENAI_PROXY_MAX_CONNECTIONS: 20 concurrent handshakes against a limit of 1 admit one."""
    proxy = await proxy_factory(max_connections=1)
    heads: list[bytes] = []
    streams: list[trio.SocketStream] = []

    async def one() -> None:
        stream, head, _ = await raw_upgrade(proxy.server.port)
        heads.append(head.split(b"\r\n", 1)[0])
        streams.append(stream)

    with trio.fail_after(10):
        async with trio.open_nursery() as nursery:
            for _ in range(20):
                nursery.start_soon(one)
        for stream in streams:
            await stream.aclose()
    assert sum(head.startswith(b"HTTP/1.1 101") for head in heads) == 1
    assert sum(head.startswith(b"HTTP/1.1 503") for head in heads) == 19


async def test_a_malformed_host_header_gets_400(proxy) -> None:
    """wsproto decodes Host as IDNA; `xn--` is not a name: a 400, not a traceback and a dropped socket."""
    with trio.fail_after(5):
        stream, head, rest = await raw_upgrade(proxy.server.port, host="xn--")
        assert head.startswith(b"HTTP/1.1 400")
        assert b"Host" in await read_to_end(stream, rest)
        async with proxy.connect() as client:  # the listener is still there
            await client.settings()
            await client.next("SettingsApplied")


async def test_handshakes_in_flight_are_bounded(proxy_factory, fake) -> None:
    """Connections that never speak cannot take every file descriptor: past the bound
    (OPENAI_PROXY_MAX_HANDSHAKES) a new one is closed at once."""
    proxy = await proxy_factory(max_handshakes=2)
    port = proxy.server.port
    with trio.fail_after(10):
        silent = [await trio.open_tcp_stream("127.0.0.1", port) for _ in range(2)]
        await trio.testing.wait_all_tasks_blocked(0.05)  # both are in their handshake now (same process)
        third = await trio.open_tcp_stream("127.0.0.1", port)
        await third.send_all(UPGRADE.format(host="x").encode())
        assert await read_to_end(third) == b""  # closed without an answer
        for stream in silent:
            await stream.aclose()
        await trio.testing.wait_all_tasks_blocked(0.05)
        stream, head, _ = await raw_upgrade(port)  # slots free again
        assert head.startswith(b"HTTP/1.1 101")
        await stream.aclose()


def test_the_systemd_unit_raises_the_descriptor_limit() -> None:
    unit = open(os.path.join(os.path.dirname(__file__), "..", "scripts", "openai-proxy.service")).read()
    limits = [line for line in unit.splitlines() if line.startswith("LimitNOFILE=")]
    assert limits and int(limits[0].split("=")[1]) >= 65536
