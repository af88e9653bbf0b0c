"""Just enough WebSocket (RFC 6455) for the benchmark apparatus, on asyncio.

The load generator and the fake upstream must stay cheap so the proxy, not
the apparatus, is what the benchmark measures. A general library spends more
per frame than the proxy under test would, so the apparatus frames by hand:

- The client masks with the all-zero key (a valid key, RFC 6455 5.3), so the
  payload goes out unchanged and costs no XOR.
- One unfragmented message per frame; continuation frames are joined anyway.
- Pings are answered, a close is echoed, nothing else is negotiated.

This is test apparatus, not a WebSocket implementation to reuse.
"""

from __future__ import annotations

import base64
import hashlib
import os
import struct
from collections.abc import Callable

GUID = b"258EAFA5-E914-47DA-95CA-C5AB0DC85B11"

TEXT, BINARY, CLOSE, PING, PONG = 0x1, 0x2, 0x8, 0x9, 0xA

_ZERO_MASK = b"\0\0\0\0"


def frame(opcode: int, payload: bytes, *, masked: bool) -> bytes:
    """One final frame; a client (`masked`) uses the zero key so the payload is unchanged."""
    length = len(payload)
    mask_bit = 0x80 if masked else 0
    if length < 126:
        header = bytes((0x80 | opcode, mask_bit | length))
    elif length < 65536:
        header = struct.pack("!BBH", 0x80 | opcode, mask_bit | 126, length)
    else:
        header = struct.pack("!BBQ", 0x80 | opcode, mask_bit | 127, length)
    if masked:
        return header + _ZERO_MASK + payload
    return header + payload


def close_frame(code: int, *, masked: bool) -> bytes:
    return frame(CLOSE, struct.pack("!H", code), masked=masked)


def unmask(data: bytes, key: bytes) -> bytes:
    if key == _ZERO_MASK:
        return data
    n = len(data)
    keys = (key * (n // 4 + 1))[:n]
    return (int.from_bytes(data, "little") ^ int.from_bytes(keys, "little")).to_bytes(n, "little")


class FrameReader:
    """Feed bytes, get (opcode, payload) for each complete message.

    `peek` lets a caller look at the first bytes of a masked payload without
    unmasking all of it: the fake upstream only needs the audio stamp.
    """

    __slots__ = ("_buffer", "_fragments", "_fragment_opcode", "peek")

    def __init__(self, peek: Callable[[bytes, bytes], bool] | None = None) -> None:
        # `peek(masked_payload, key)` may consume a masked message itself
        # (returning True) so the reader never unmasks what nobody reads.
        self.peek = peek
        self._buffer = bytearray()
        self._fragments: list[bytes] = []
        self._fragment_opcode = 0

    def feed(self, data: bytes) -> list[tuple[int, bytes]]:
        buffer = self._buffer
        buffer += data
        out: list[tuple[int, bytes]] = []
        position = 0
        size = len(buffer)
        while size - position >= 2:
            first, second = buffer[position], buffer[position + 1]
            length = second & 0x7F
            offset = position + 2
            if length == 126:
                if size - offset < 2:
                    break
                length = (buffer[offset] << 8) | buffer[offset + 1]
                offset += 2
            elif length == 127:
                if size - offset < 8:
                    break
                length = int.from_bytes(buffer[offset : offset + 8], "big")
                offset += 8
            key = None
            if second & 0x80:
                if size - offset < 4:
                    break
                key = bytes(buffer[offset : offset + 4])
                offset += 4
            if size - offset < length:
                break
            payload = bytes(buffer[offset : offset + length])
            position = offset + length
            opcode = first & 0x0F
            if key is not None:
                if opcode == TEXT and first & 0x80 and self.peek is not None and self.peek(payload, key):
                    continue
                payload = unmask(payload, key)
            if not first & 0x80:  # a fragment: keep until the final one
                if opcode:
                    self._fragment_opcode = opcode
                self._fragments.append(payload)
                continue
            if opcode == 0:
                self._fragments.append(payload)
                payload = b"".join(self._fragments)
                opcode = self._fragment_opcode
                self._fragments = []
            out.append((opcode, payload))
        if position:
            del buffer[:position]
        return out


def client_handshake(host: str, port: int, path: str, extra_headers: dict[str, str] | None = None) -> tuple[bytes, bytes]:
    """The upgrade request and the Sec-WebSocket-Accept value the answer must carry."""
    key = base64.b64encode(os.urandom(16))
    lines = [
        f"GET {path} HTTP/1.1",
        f"Host: {host}:{port}",
        "Upgrade: websocket",
        "Connection: Upgrade",
        f"Sec-WebSocket-Key: {key.decode()}",
        "Sec-WebSocket-Version: 13",
    ]
    lines += [f"{name}: {value}" for name, value in (extra_headers or {}).items()]
    request = ("\r\n".join(lines) + "\r\n\r\n").encode()
    return request, accept_value(key)


def accept_value(key: bytes) -> bytes:
    return base64.b64encode(hashlib.sha1(key + GUID).digest())


def server_handshake_answer(request: bytes) -> bytes | None:
    """The 101 answer to an upgrade request, or None when it is not one."""
    key = None
    for line in request.split(b"\r\n")[1:]:
        name, _, value = line.partition(b":")
        if name.strip().lower() == b"sec-websocket-key":
            key = value.strip()
    if key is None:
        return None
    return (
        b"HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n"
        b"Sec-WebSocket-Accept: " + accept_value(key) + b"\r\n\r\n"
    )
