"""The WebSocket data path the proxy's hot loop runs on (issue 6).

trio-websocket runs a reader task per socket and hands every message over a
channel; with wsproto's framing that costs about three times what Trio's own
streams do per message (`python -m bench.ws_cost`). The proxy carries 100
audio messages a second per session, so its two sockets use this instead:

- handshakes stay sans-I/O in wsproto's `H11Handshake` (proxy/wsopen.py);
- frames (RFC 6455 section 5) are parsed and built here, with no reader task:
  `get_message` reads the stream itself, in the caller's task;
- one lock serialises writers (data, pong, close), taken without a
  scheduling round-trip when free; on plain TCP a frame is written straight
  to the socket, and `write_now` lets the translator write without waiting.

The interface is the part of trio-websocket's the proxy uses, and so are the
exceptions (`ConnectionClosed`, `CloseReason`, `ConnectionRejected`,
`HandshakeError`), so the Trio layer reads the same either way. No extension
is negotiated (no permessage-deflate), as before.
"""

from __future__ import annotations

import os
import struct

import trio
from trio_websocket import CloseReason, ConnectionClosed

from .tls import TlsStream

CONTINUATION, TEXT, BINARY, CLOSE, PING, PONG = 0x0, 0x1, 0x2, 0x8, 0x9, 0xA
RECEIVE_BYTES = 65536
CLOSE_WAIT_S = 1.0  # for the peer's half of the closing handshake

# What `write_now` returns for TLS when the kernel took only part of the
# ciphertext: the rest waits inside the TlsStream, and `send_raw` flushes it.
TLS_HELD = b"tls"

# RFC 6455 7.4.1 codes used here.
NORMAL, PROTOCOL_ERROR, ABNORMAL, INVALID_DATA, TOO_BIG = 1000, 1002, 1006, 1007, 1009


def _mask(data: bytes, key: bytes) -> bytes:
    """XOR with the repeating 4-byte key, as one big-integer operation (C speed)."""
    size = len(data)
    if not size:
        return data
    keys = (key * (size // 4 + 1))[:size]
    return (int.from_bytes(data, "little") ^ int.from_bytes(keys, "little")).to_bytes(size, "little")


def _header(opcode: int, size: int, masked: bool) -> bytes:
    mask_bit = 0x80 if masked else 0
    if size < 126:
        return bytes((0x80 | opcode, mask_bit | size))
    if size < 65536:
        return struct.pack("!BBH", 0x80 | opcode, mask_bit | 126, size)
    return struct.pack("!BBQ", 0x80 | opcode, mask_bit | 127, size)


class _ProtocolError(Exception):
    def __init__(self, code: int, reason: str) -> None:
        super().__init__(reason)
        self.code = code
        self.reason = reason


class FastWebSocket:
    """One open WebSocket over a Trio stream; `client` says which side masks (RFC 6455 5.1)."""

    def __init__(self, stream: trio.abc.Stream, *, client: bool, max_message_size: int, buffered: bytes = b"") -> None:
        self._stream = stream
        # The socket's descriptor for direct non-blocking writes; -1 for TLS.
        self._fd = stream.socket.fileno() if type(stream) is trio.SocketStream else -1
        # TLS (proxy/tls.py) gets direct writes too: encrypted in OpenSSL, then os.write.
        self._tls = stream if type(stream) is TlsStream else None
        self._drained = True
        self._client = client
        self._max_message_size = max_message_size
        self._buffer = bytearray(buffered)
        self._fragments: list[bytes] = []
        self._fragments_size = 0
        self._fragment_opcode = 0
        self._send_lock = trio.StrictFIFOLock()
        self._reading = False
        self._close_sent = False
        self._peer_closed = trio.Event()
        self._keys = b""  # mask keys not yet used (client side)
        self._key_position = 0
        #: None while open; the CloseReason once either side closed.
        self.closed: CloseReason | None = None

    # ---------------------------------------------------------------- receive

    async def get_message(self) -> str | bytes:
        """The next message; raises ConnectionClosed once the connection is closed."""
        if self.closed is not None:
            raise ConnectionClosed(self.closed)
        self._reading = True
        try:
            while True:
                message = await self._next_frame_message()
                if message is not None:
                    return message
        finally:
            self._reading = False

    async def _next_frame_message(self) -> str | bytes | None:
        """Parse one frame (reading as needed); a data message, or None for control/fragment."""
        buffer = self._buffer
        while True:
            size = len(buffer)
            if size >= 2:
                second = buffer[1]
                length = second & 0x7F
                offset = 2
                if length == 126:
                    offset = 4
                    if size >= 4:
                        length = (buffer[2] << 8) | buffer[3]
                elif length == 127:
                    offset = 10
                    if size >= 10:
                        length = int.from_bytes(buffer[2:10], "big")
                if size >= offset:
                    try:
                        self._check_header(buffer[0], second, length)
                    except _ProtocolError as error:
                        await self._fail(error.code, error.reason)
                    masked = second & 0x80
                    end = offset + (4 if masked else 0) + length
                    if size >= end:
                        return await self._on_frame(buffer, offset, masked, end)
            data = await self._receive()
            if not data:
                await self._abort(ABNORMAL, "connection lost")
            buffer += data

    async def _receive(self) -> bytes:
        """Some bytes from the peer; b"" once the connection is gone."""
        fd = self._fd
        if fd < 0:
            try:
                return await self._stream.receive_some(RECEIVE_BYTES)
            except (trio.BrokenResourceError, trio.ClosedResourceError):
                return b""
        # Plain TCP: after a read that emptied the socket, the next frame is
        # ~20 ms away, so wait for readiness first instead of a read that
        # fails with EAGAIN (one system call per message saved).
        while True:
            try:
                if self._drained:
                    await trio.lowlevel.wait_readable(fd)
                else:
                    await trio.lowlevel.checkpoint()
            except trio.ClosedResourceError:
                return b""
            if self._fd < 0:
                return b""
            try:
                data = os.read(fd, RECEIVE_BYTES)
            except BlockingIOError:
                self._drained = True
                continue
            except OSError:
                return b""
            self._drained = len(data) < RECEIVE_BYTES
            return data

    def _check_header(self, first: int, second: int, length: int) -> None:
        if first & 0x70:
            raise _ProtocolError(PROTOCOL_ERROR, "reserved bits set without an extension")
        masked = bool(second & 0x80)
        if masked == self._client:  # RFC 6455 5.1: clients mask, servers do not
            raise _ProtocolError(PROTOCOL_ERROR, "frame masking is wrong for this side")
        opcode = first & 0x0F
        if opcode >= 0x8:
            if not first & 0x80 or length > 125:
                raise _ProtocolError(PROTOCOL_ERROR, "control frames must be final and at most 125 bytes")
            if opcode not in (CLOSE, PING, PONG):
                raise _ProtocolError(PROTOCOL_ERROR, f"unknown opcode {opcode}")
        elif opcode not in (CONTINUATION, TEXT, BINARY):
            raise _ProtocolError(PROTOCOL_ERROR, f"unknown opcode {opcode}")
        elif self._fragments_size + length > self._max_message_size:
            raise _ProtocolError(TOO_BIG, f"Exceeded maximum message size: {self._max_message_size} bytes")

    async def _on_frame(self, buffer: bytearray, offset: int, masked: int, end: int) -> str | bytes | None:
        first = buffer[0]
        if masked:
            key = bytes(buffer[offset : offset + 4])
            payload = _mask(bytes(buffer[offset + 4 : end]), key)
        else:
            payload = bytes(buffer[offset:end])
        del buffer[:end]
        opcode = first & 0x0F
        final = first & 0x80
        if opcode == BINARY or opcode == TEXT:
            if self._fragment_opcode:
                await self._fail(PROTOCOL_ERROR, "a new message began inside a fragmented one")
            if not final:
                self._fragment_opcode = opcode
                self._fragments = [payload]
                self._fragments_size = len(payload)
                return None
            return await self._message(opcode, payload)
        if opcode == CONTINUATION:
            if not self._fragment_opcode:
                await self._fail(PROTOCOL_ERROR, "continuation frame without a message")
            self._fragments.append(payload)
            self._fragments_size += len(payload)
            if not final:
                return None
            opcode, self._fragment_opcode = self._fragment_opcode, 0
            payload = b"".join(self._fragments)
            self._fragments, self._fragments_size = [], 0
            return await self._message(opcode, payload)
        if opcode == PING:
            await self._send_frame(PONG, payload)
            return None
        if opcode == PONG:
            return None
        await self._on_close(payload)
        return None  # not reached: _on_close raises

    async def _message(self, opcode: int, payload: bytes) -> str | bytes:
        if opcode == BINARY:
            return payload
        try:
            return payload.decode("utf-8")
        except UnicodeDecodeError:
            await self._fail(INVALID_DATA, "text message is not UTF-8")
            raise AssertionError("not reached")  # pragma: no cover

    async def _on_close(self, payload: bytes) -> None:
        if len(payload) >= 2:
            code = int.from_bytes(payload[:2], "big")
            reason = payload[2:].decode("utf-8", errors="replace") or None
        else:
            code, reason = 1005, None
        self._peer_closed.set()
        if self.closed is None:
            # The peer began the closing handshake: echo its code (RFC 6455 5.5.1).
            self.closed = CloseReason(code, reason)
            await self._send_close(code if code not in (1005, 1006, 1015) else NORMAL, "")
            await self._close_stream()
        raise ConnectionClosed(self.closed)

    async def _fail(self, code: int, reason: str) -> None:
        """Close with `code` because of what the peer sent, then raise ConnectionClosed."""
        if self.closed is None:
            self.closed = CloseReason(code, reason)
            await self._send_close(code, reason)
            await self._close_stream()
        raise ConnectionClosed(self.closed)

    async def _abort(self, code: int, reason: str) -> None:
        if self.closed is None:
            self.closed = CloseReason(code, reason)
        self._peer_closed.set()
        await self._close_stream()
        raise ConnectionClosed(self.closed)

    # ------------------------------------------------------------------- send

    async def send_message(self, message: str | bytes) -> None:
        """Send one message; raises ConnectionClosed if the connection is closed."""
        if self.closed is not None:
            raise ConnectionClosed(self.closed)
        if type(message) is str:
            await self._send_frame(TEXT, message.encode("utf-8"))
        elif isinstance(message, bytes | bytearray | memoryview):
            await self._send_frame(BINARY, bytes(message))
        else:
            raise ValueError("message must be str or bytes")

    def write_now(self, message: str | bytes) -> bytes | None:
        """Write one message without waiting, or not at all.

        None: nothing was written (TLS, closed, or another send in progress);
        send it with `send_message`. b"": the whole frame was written. Other
        bytes: the kernel took only part of the frame; the caller must send
        the rest with `send_raw` before anything else.
        """
        fd = self._fd
        if fd < 0:
            return self._write_tls_now(message)
        if self.closed is not None or self._send_lock.locked():
            return None
        if type(message) is str:
            data = self._frame(TEXT, message.encode("utf-8"))
        else:
            data = self._frame(BINARY, bytes(message))
        try:
            sent = os.write(fd, data)
        except BlockingIOError:
            return None
        except OSError:
            return None  # the awaiting send reports it as a close
        return data[sent:]

    def _write_tls_now(self, message: str | bytes) -> bytes | None:
        tls = self._tls
        if tls is None or self.closed is not None or self._send_lock.locked() or tls.pending:
            return None
        if type(message) is str:
            data = self._frame(TEXT, message.encode("utf-8"))
        else:
            data = self._frame(BINARY, bytes(message))
        try:
            return b"" if tls.write_nowait(data) else TLS_HELD
        except trio.BrokenResourceError:
            return None  # the awaiting send reports it as a close

    async def send_raw(self, data: bytes) -> None:
        """The rest of a frame `write_now` began (for TLS: the ciphertext it holds)."""
        if self._tls is None:
            await self._send_bytes(data)
            return
        lock = self._send_lock
        await lock.acquire()
        try:
            await self._tls.flush()
        except (trio.BrokenResourceError, trio.ClosedResourceError):
            if self.closed is None:
                self.closed = CloseReason(ABNORMAL, "connection lost")
            raise ConnectionClosed(self.closed) from None
        finally:
            lock.release()

    def _frame(self, opcode: int, payload: bytes) -> bytes:
        if self._client:
            # RFC 6455 5.3: a fresh unpredictable key per frame, from the OS's
            # CSPRNG, 64 keys per system call.
            position = self._key_position
            if position >= len(self._keys):
                self._keys, position = os.urandom(256), 0
            key = self._keys[position : position + 4]
            self._key_position = position + 4
            return _header(opcode, len(payload), True) + key + _mask(payload, key)
        return _header(opcode, len(payload), False) + payload

    async def _send_frame(self, opcode: int, payload: bytes) -> None:
        await self._send_bytes(self._frame(opcode, payload))

    async def _send_bytes(self, data: bytes) -> None:
        lock = self._send_lock
        try:
            lock.acquire_nowait()  # free almost always: no scheduling round-trip
        except trio.WouldBlock:
            await lock.acquire()
        try:
            tls = self._tls
            if tls is not None:
                # Like plain TCP below: write now, wait only for what the kernel did not take.
                if not tls.write_nowait(data):
                    await tls.flush()
                return
            fd = self._fd
            if fd >= 0:
                # Plain TCP: the kernel almost always takes the whole frame at
                # once, so try that first and let Trio wait only for the rest.
                try:
                    sent = os.write(fd, data)
                except BlockingIOError:
                    sent = 0
                except OSError:
                    raise trio.BrokenResourceError from None
                if sent == len(data):
                    return
                data = data[sent:]
            await self._stream.send_all(data)
        except (trio.BrokenResourceError, trio.ClosedResourceError):
            if self.closed is None:
                self.closed = CloseReason(ABNORMAL, "connection lost")
            raise ConnectionClosed(self.closed) from None
        finally:
            lock.release()

    async def _send_close(self, code: int, reason: str) -> None:
        if self._close_sent:
            return
        self._close_sent = True
        payload = struct.pack("!H", code) + reason.encode("utf-8")[:123]
        try:
            await self._send_frame(CLOSE, payload)
        except ConnectionClosed:
            pass

    async def aclose(self, code: int = NORMAL, reason: str | None = None) -> None:
        """Close with `code`; waits (briefly) for the peer's half of the closing handshake."""
        if self.closed is not None:
            await self._close_stream()
            return
        self.closed = CloseReason(code, reason)
        try:
            await self._send_close(code, reason or "")
            with trio.move_on_after(CLOSE_WAIT_S):
                if self._reading:
                    await self._peer_closed.wait()  # the reading task sees the reply
                else:
                    await self._drain_until_close()
        finally:
            await self._close_stream()

    async def _drain_until_close(self) -> None:
        while not self._peer_closed.is_set():
            try:
                data = await self._stream.receive_some(RECEIVE_BYTES)
            except (trio.BrokenResourceError, trio.ClosedResourceError):
                return
            if not data:
                return
            self._buffer += data
            # Only look for the close frame; data after our close is discarded.
            while len(self._buffer) >= 2:
                second = self._buffer[1]
                length = second & 0x7F
                offset = 2 + (2 if length == 126 else 8 if length == 127 else 0)
                if len(self._buffer) < offset:
                    break
                if length == 126:
                    length = (self._buffer[2] << 8) | self._buffer[3]
                elif length == 127:
                    length = int.from_bytes(self._buffer[2:10], "big")
                end = offset + (4 if second & 0x80 else 0) + length
                if len(self._buffer) < end:
                    break
                opcode = self._buffer[0] & 0x0F
                del self._buffer[:end]
                if opcode == CLOSE:
                    self._peer_closed.set()
                    return

    async def _close_stream(self) -> None:
        self._fd = -1
        with trio.CancelScope(shield=True):
            try:
                await self._stream.aclose()
            except (trio.BrokenResourceError, trio.ClosedResourceError):
                pass
