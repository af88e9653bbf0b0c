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
    """Direct writes (issue 6) never reorder or cut frames: when the kernel takes part of a
    frame, the rest goes out before anything else, and later frames queue behind it."""
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
