"""proxy/ws/socket.py: the Trio WebSocket of the proxy's data path (RFC 6455 section 5),
fed raw bytes through an in-memory stream so every edge is exact."""

from __future__ import annotations

import json
import os
import struct
from functools import partial

import pytest
import trio
import trio.testing
from proxy.ws.codec import FrameCodec
from proxy.ws.codec import mask as _mask
from proxy.ws.socket import ConnectionClosed, WebSocket
from proxy.ws.transport import StreamTransport


def frame(opcode: int, payload: bytes, *, final: bool = True, masked: bool = True) -> bytes:
    first = (0x80 if final else 0) | opcode
    size = len(payload)
    if size < 126:
        head = bytes((first, (0x80 if masked else 0) | size))
    else:
        head = struct.pack("!BBH", first, (0x80 if masked else 0) | 126, size)
    if not masked:
        return head + payload
    key = os.urandom(4)
    return head + key + _mask(payload, key)


class Peer:
    """The far end: writes raw frames, reads back whatever the socket sent."""

    def __init__(self, stream: trio.abc.Stream) -> None:
        self.stream = stream
        self.buffer = bytearray()

    async def send(self, data: bytes) -> None:
        await self.stream.send_all(data)

    async def read_frame(self) -> tuple[int, bytes]:
        """One frame sent by the socket under test (unmasking if it masked)."""
        while True:
            if len(self.buffer) >= 2:
                second = self.buffer[1]
                size, offset = second & 0x7F, 2
                if size == 126:
                    size, offset = int.from_bytes(self.buffer[2:4], "big"), 4
                elif size == 127:
                    size, offset = int.from_bytes(self.buffer[2:10], "big"), 10
                masked = bool(second & 0x80)
                end = offset + (4 if masked else 0) + size
                if len(self.buffer) >= end:
                    opcode = self.buffer[0] & 0x0F
                    payload = bytes(self.buffer[offset + (4 if masked else 0) : end])
                    if masked:
                        payload = _mask(payload, bytes(self.buffer[offset : offset + 4]))
                    del self.buffer[:end]
                    return opcode, payload
            data = await self.stream.receive_some(65536)
            assert data, "stream closed"
            self.buffer += data


def pair(*, client: bool = False, max_message_size: int = 1 << 20) -> tuple[WebSocket, Peer]:
    ours, theirs = trio.testing.memory_stream_pair()
    codec = FrameCodec(client=client, max_message_size=max_message_size)
    return WebSocket(StreamTransport(ours), codec), Peer(theirs)


async def test_fragments_join_and_a_ping_in_between_is_answered() -> None:
    socket, peer = pair()
    with trio.fail_after(5):
        await peer.send(frame(0x1, "héllo ".encode(), final=False))
        await peer.send(frame(0x9, b"are you there"))
        await peer.send(frame(0x0, b"world"))
        assert await socket.get_message() == "héllo world"
        assert await peer.read_frame() == (0xA, b"are you there")


async def test_binary_and_text_round_trip_in_order() -> None:
    socket, peer = pair()
    with trio.fail_after(5):
        await peer.send(frame(0x2, b"\x00\x01" * 480) + frame(0x1, b'{"type":"KeepAlive"}'))
        assert await socket.get_message() == b"\x00\x01" * 480
        assert await socket.get_message() == '{"type":"KeepAlive"}'
        await socket.send_message(b"\x02" * 960)
        await socket.send_message("text")
        assert await peer.read_frame() == (0x2, b"\x02" * 960)
        assert await peer.read_frame() == (0x1, b"text")


async def test_client_side_masks_every_frame() -> None:
    socket, peer = pair(client=True)
    with trio.fail_after(5):
        await socket.send_message("to the upstream")
        assert peer.buffer == b""
        raw = await peer.stream.receive_some(65536)
        assert raw[1] & 0x80  # RFC 6455 5.3: a client frame is masked
        peer.buffer += raw
        assert await peer.read_frame() == (0x1, b"to the upstream")


@pytest.mark.parametrize(
    ("data", "code"),
    [
        (frame(0x2, b"audio", masked=False), 1002),  # a client must mask
        (frame(0x1, b"\xff\xfe not utf-8"), 1007),
        (bytes((0x82 | 0x40, 0x80 | 1)) + b"\0\0\0\0x", 1002),  # reserved bit, no extension
        (frame(0x0, b"orphan continuation"), 1002),
        (frame(0x3, b""), 1002),  # unknown opcode
    ],
)
async def test_bad_frames_close_with_the_rfc_code(data: bytes, code: int) -> None:
    socket, peer = pair()
    with trio.fail_after(5):
        await peer.send(data)
        with pytest.raises(ConnectionClosed) as closed:
            await socket.get_message()
        assert closed.value.reason.code == code
        opcode, payload = await peer.read_frame()
        assert (opcode, int.from_bytes(payload[:2], "big")) == (0x8, code)


async def test_too_big_closes_with_1009_before_the_payload_arrives() -> None:
    socket, peer = pair(max_message_size=1000)
    with trio.fail_after(5):
        await peer.send(bytes((0x82, 0x80 | 126)) + (1001).to_bytes(2, "big") + b"\0\0\0\0")  # header only
        with pytest.raises(ConnectionClosed) as closed:
            await socket.get_message()
        assert closed.value.reason.code == 1009
        assert socket.closed is not None and socket.closed.code == 1009


async def test_peer_close_is_echoed_and_reported() -> None:
    socket, peer = pair()
    with trio.fail_after(5):
        await peer.send(frame(0x8, struct.pack("!H", 4000) + b"bye"))
        with pytest.raises(ConnectionClosed) as closed:
            await socket.get_message()
        assert (closed.value.reason.code, closed.value.reason.reason) == (4000, "bye")
        opcode, payload = await peer.read_frame()
        assert (opcode, int.from_bytes(payload[:2], "big")) == (0x8, 4000)
        with pytest.raises(ConnectionClosed):
            await socket.send_message("late")


async def test_local_close_sends_the_code_and_waits_for_the_answer() -> None:
    socket, peer = pair()
    with trio.fail_after(5):
        async with trio.open_nursery() as nursery:
            nursery.start_soon(socket.aclose, 1013, "client buffer full")
            opcode, payload = await peer.read_frame()
            assert (opcode, int.from_bytes(payload[:2], "big"), payload[2:]) == (0x8, 1013, b"client buffer full")
            await peer.send(frame(0x8, payload[:2]))
        assert socket.closed is not None and socket.closed.code == 1013
        assert await peer.stream.receive_some(10) == b""  # then the stream is closed


async def read_until_closed(stream: trio.abc.Stream) -> bytes:
    data = b""
    while chunk := await stream.receive_some(65536):
        data += chunk
    return data


async def test_the_listener_answers_non_websocket_requests_and_keeps_serving(proxy) -> None:
    with trio.fail_after(10):
        port = proxy.server.port
        plain = await trio.open_tcp_stream("127.0.0.1", port)
        await plain.send_all(b"GET /openai HTTP/1.1\r\nHost: x\r\n\r\n")
        assert (await read_until_closed(plain)).startswith(b"HTTP/1.1 400")
        garbage = await trio.open_tcp_stream("127.0.0.1", port)
        await garbage.send_all(b"\x16\x03\x01 not http at all\r\n\r\n")
        assert (await read_until_closed(garbage)).startswith(b"HTTP/1.1 400")
        async with proxy.connect() as client:  # the listener is still there
            await client.settings()
            await client.next("SettingsApplied")


async def test_a_client_that_stops_reading_still_gets_every_frame_in_order(proxy, fake, monkeypatch) -> None:
    """Direct writes never reorder or cut frames: when the kernel takes part of a frame,
    the rest goes out before anything else (a PONG included), and later frames queue
    behind it."""
    from trio_websocket import wrap_client_stream

    from proxy.testing.client import DEFAULT_SETTINGS

    tails = []
    flush = WebSocket.flush

    async def counting_flush(self) -> None:
        if self.tail_pending:
            tails.append(len(self._tail))
        await flush(self)

    monkeypatch.setattr(WebSocket, "flush", counting_flush)
    fake.responder = None
    # 4000 frames of 960 bytes, each stamped with its number, so order and loss both show.
    audio = b"".join(index.to_bytes(4, "little") * 240 for index in range(4000))
    with trio.fail_after(30):
        async with trio.open_nursery() as nursery:
            sock = trio.socket.socket()
            sock.setsockopt(trio.socket.SOL_SOCKET, trio.socket.SO_RCVBUF, 4096)  # fills fast
            await sock.connect(("127.0.0.1", proxy.server.port))
            socket = await wrap_client_stream(
                nursery, trio.SocketStream(sock), "127.0.0.1", "/openai", message_queue_size=1
            )
            assert '"Welcome"' in await socket.get_message()
            await socket.send_message(json.dumps(DEFAULT_SETTINGS))
            while '"SettingsApplied"' not in await socket.get_message():
                pass
            upstream = await fake.next_connection()
            nursery.start_soon(partial(upstream.play_response, transcript="Long.", audio=audio, chunk=960))
            await trio.sleep(1.0)  # not reading: the proxy's writes back up into the kernel
            # A PING now (Python websockets clients send one every 20 s): its PONG
            # must wait for the frame being written, not land inside it.
            nursery.start_soon(socket.ping, b"mid-stream")
            heard = []
            while True:
                message = await socket.get_message()
                if isinstance(message, bytes):
                    heard.append(message)
                elif '"AgentAudioDone"' in message:
                    break
            await socket.aclose()
    assert b"".join(heard) == audio
    assert tails, "the kernel never took part of a frame: the test did not reach the path it checks"


async def test_each_client_frame_has_its_own_mask_key() -> None:
    socket, peer = pair(client=True)
    with trio.fail_after(5):
        for _ in range(100):  # past one batch of keys from the OS
            await socket.send_message(b"x" * 10)
        raw = b""
        while len(raw) < 100 * 16:
            raw += await peer.stream.receive_some(65536)
    keys = {raw[index * 16 + 2 : index * 16 + 6] for index in range(100)}
    assert len(keys) > 95  # random 32-bit keys: a repeat in 100 is possible, not many


# ------------------------------------------------- over a real socket pair


def socket_pair(*, small: bool = True) -> tuple[WebSocket, trio.SocketStream]:
    """A server-side WebSocket on plain-socket transport, and the raw far end.

    Small kernel buffers, so a large frame is only partly taken at once.
    """
    from proxy.ws.transport import SocketTransport

    ours, theirs = trio.socket.socketpair()
    if small:
        ours.setsockopt(trio.socket.SOL_SOCKET, trio.socket.SO_SNDBUF, 4096)
        theirs.setsockopt(trio.socket.SOL_SOCKET, trio.socket.SO_RCVBUF, 4096)
    codec = FrameCodec(client=False, max_message_size=1 << 20)
    return WebSocket(SocketTransport(trio.SocketStream(ours)), codec), trio.SocketStream(theirs)


async def test_a_ping_during_a_partial_write_is_answered_after_the_whole_frame() -> None:
    """Issue: a pong appeared at byte 8,064 of a 200,010-byte binary frame, because the
    tail of a partial write was sent outside the write path while the reader answered
    a PING. Now the tail stays in the socket and the pong goes out after it."""
    socket, far = socket_pair()
    audio = bytes(range(256)) * 781 + b"0123456789"  # 200,010 bytes
    peer = Peer(far)
    with trio.fail_after(10):
        assert socket.write_now(audio)
        assert socket.tail_pending  # the kernel took only part of it
        await peer.send(frame(0x9, b"are you there"))
        async with trio.open_nursery() as nursery:
            nursery.start_soon(socket.get_message)  # answers the ping
            await trio.testing.wait_all_tasks_blocked()
            assert await peer.read_frame() == (0x2, audio)
            assert await peer.read_frame() == (0xA, b"are you there")
            await socket.send_message("after")
            assert await peer.read_frame() == (0x1, b"after")
            nursery.cancel_scope.cancel()


async def test_every_later_write_sends_a_pending_tail_first() -> None:
    socket, far = socket_pair()
    peer = Peer(far)
    first = b"\x01" * 100_000
    with trio.fail_after(10):
        assert socket.write_now(first) and socket.tail_pending
        assert not socket.write_now(b"second")  # something is ahead of it: the caller must wait
        async with trio.open_nursery() as nursery:
            nursery.start_soon(socket.send_message, b"second")
            assert await peer.read_frame() == (0x2, first)
            assert await peer.read_frame() == (0x2, b"second")
        assert not socket.tail_pending


async def test_a_send_cancelled_mid_frame_breaks_the_socket_so_nothing_follows_the_cut(autojump_clock) -> None:
    socket, far = socket_pair()
    with trio.move_on_after(1) as cancelled:
        await socket.send_message(b"\x02" * 500_000)  # the peer is not reading
    assert cancelled.cancelled_caught
    assert socket.state.value == "broken" and socket.closed.code == 1006
    with pytest.raises(ConnectionClosed):
        await socket.send_message(b"later")
    assert not socket.write_now(b"later")
    await socket.aclose()  # no close frame after a cut frame: the transport is just closed
    received = b""
    while chunk := await far.receive_some(65536):
        received += chunk
    assert 0 < len(received) < 500_000 + 10
    assert b"later" not in received and received[-1:] == b"\x02"


async def test_the_close_frame_has_a_deadline_when_the_peer_does_not_read(autojump_clock) -> None:
    from proxy.ws.socket import CLOSE_TIMEOUT_S

    socket, far = socket_pair()
    assert socket.write_now(b"\x03" * 300_000) and socket.tail_pending  # fills the kernel's buffers
    started = trio.current_time()
    await socket.aclose(1000, "bye")
    assert trio.current_time() - started <= CLOSE_TIMEOUT_S + 0.01
    assert socket.state.value == "broken"  # the close frame could not follow the unsent tail


async def test_the_drain_after_a_close_discards_and_is_bounded(autojump_clock) -> None:
    """Issue: waiting for the peer's close, 20 MiB were buffered past a 1 MiB limit."""
    socket, far = socket_pair(small=False)
    peer = Peer(far)
    sent = 0

    async def flood() -> None:
        nonlocal sent
        chunk = frame(0x2, b"x" * 60_000)
        while sent < 20 << 20:
            await peer.send(chunk)
            sent += len(chunk)
        await peer.send(frame(0x8, struct.pack("!H", 1000)))

    async with trio.open_nursery() as nursery:
        nursery.start_soon(flood)
        await socket.aclose(1000)
    assert sent >= 20 << 20
    assert socket.state.value == "closed"  # the peer's close was found behind the flood
    assert len(socket._codec._buffer) < 65536


async def test_an_outgoing_close_reason_is_cut_on_a_character_boundary() -> None:
    socket, peer = pair()
    with trio.fail_after(5):
        async with trio.open_nursery() as nursery:
            nursery.start_soon(socket.aclose, 1011, "€" * 60)  # 180 bytes of UTF-8
            opcode, payload = await peer.read_frame()
            await peer.send(frame(0x8, payload[:2]))
    assert opcode == 0x8 and len(payload) <= 125
    assert payload[2:].decode("utf-8") == "€" * 41


@pytest.mark.parametrize(
    ("payload", "code"),
    [(b"\x03", 1002), (struct.pack("!H", 1005), 1002), (struct.pack("!H", 1000) + b"\xff", 1007)],
)
async def test_a_bad_close_frame_is_answered_with_the_rfc_code(payload: bytes, code: int) -> None:
    socket, peer = pair()
    with trio.fail_after(5):
        await peer.send(frame(0x8, payload))
        with pytest.raises(ConnectionClosed) as closed:
            await socket.get_message()
        assert closed.value.reason.code == code
        opcode, answer = await peer.read_frame()
        assert (opcode, int.from_bytes(answer[:2], "big")) == (0x8, code)


async def test_many_pings_in_one_read_get_one_pong() -> None:
    socket, peer = pair()
    with trio.fail_after(5):
        await peer.send(b"".join(frame(0x9, b"%d" % index) for index in range(100)) + frame(0x1, b"then"))
        assert await socket.get_message() == "then"
        assert await peer.read_frame() == (0xA, b"99")
        await socket.send_message("next")
        assert await peer.read_frame() == (0x1, b"next")  # no other pong came first


async def test_states_move_open_closing_closed() -> None:
    socket, peer = pair()
    assert socket.state.value == "open" and socket.closed is None
    with trio.fail_after(5):
        async with trio.open_nursery() as nursery:
            nursery.start_soon(socket.aclose, 1000)
            await peer.read_frame()
            assert socket.state.value == "closing"
            await peer.send(frame(0x8, struct.pack("!H", 1000)))
    assert socket.state.value == "closed"
