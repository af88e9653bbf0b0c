"""RFC 6455 frames, sans-I/O: bytes in, messages and events out; messages in, bytes out.

No socket, no clock, no Trio: `proxy/ws/socket.py` moves the bytes. The
reading side is one call, `next_message()`, that returns what the received
bytes complete:

- a data message, as the `str` or `bytes` itself (the hot path allocates
  no event object: 100 audio messages a second per session pass here);
- a `Close` event when the peer's close frame arrives;
- None when more bytes are needed.

Control frames in between are handled on the way without an event each:
the payload of the latest PING waits in `ping` (several pings in one read
are answered once, with the latest payload, RFC 6455 5.5.3 allows it) and
PONGs are counted in `pongs`. Anything the peer got wrong raises
`ProtocolError` with the close code to answer (RFC 6455 7.4.1); after that,
or after a close, the codec reads nothing more.

Limits: a message (all its fragments) is at most `max_message_size` bytes,
and is refused with 1009 as soon as a frame header says it would be larger.
Fragments are joined as they arrive into one buffer, so a message cut into
one-byte fragments costs its size, not a list entry per fragment. Once our
own close frame is out (`start_discarding`), payloads are skipped as they
arrive rather than buffered: only a close frame is looked for.
"""

from __future__ import annotations

import codecs
import os
import struct

import attrs

CONTINUATION, TEXT, BINARY, CLOSE, PING, PONG = 0x0, 0x1, 0x2, 0x8, 0x9, 0xA

# RFC 6455 7.4.1 codes.
NORMAL = 1000
GOING_AWAY = 1001
PROTOCOL_ERROR = 1002
NO_STATUS = 1005  # a close frame without a code; never sent (7.1.5)
ABNORMAL = 1006  # no close frame at all; never sent (7.1.5)
INVALID_DATA = 1007
POLICY = 1008
TOO_BIG = 1009
INTERNAL_ERROR = 1011

MAX_CONTROL_PAYLOAD = 125  # RFC 6455 5.5
MAX_CLOSE_REASON_BYTES = MAX_CONTROL_PAYLOAD - 2


def close_code_allowed(code: int) -> bool:
    """May this code travel in a close frame? RFC 6455 7.4.1/7.4.2 and the IANA registry.

    1000-1003 and 1007-1014 are defined (1012-1014 registered since), 3000-4999
    belong to libraries and applications. 1004 is reserved, 1005, 1006 and
    1015 are for local reporting only, the rest of 0-2999 is reserved for
    the protocol and 5000+ is not a close code at all.
    """
    return 1000 <= code <= 1003 or 1007 <= code <= 1014 or 3000 <= code <= 4999


class ProtocolError(Exception):
    """The peer broke RFC 6455; close with `code`."""

    def __init__(self, code: int, reason: str) -> None:
        super().__init__(reason)
        self.code = code
        self.reason = reason


@attrs.frozen
class Close:
    """The peer's close frame: its code (1005 when it had none) and reason."""

    code: int
    reason: str


def mask(data: bytes, key: bytes) -> bytes:
    """XOR with the repeating 4-byte key (RFC 6455 5.3), as one big-integer operation: C speed."""
    size = len(data)
    if not size:
        return b""
    keys = (key * (size // 4 + 1))[:size]
    return (int.from_bytes(data, "little") ^ int.from_bytes(keys, "little")).to_bytes(size, "little")


def _header(opcode: int, size: int, masked: bool) -> bytes:
    mask_bit = 0x80 if masked else 0
    if size < 126:
        return bytes((0x80 | opcode, mask_bit | size))
    if size < 65536:
        return struct.pack("!BBH", 0x80 | opcode, mask_bit | 126, size)
    return struct.pack("!BBQ", 0x80 | opcode, mask_bit | 127, size)


def truncate_utf8(text: str, limit: int) -> bytes:
    """`text` in UTF-8, cut to at most `limit` bytes without splitting a character."""
    data = text.encode("utf-8")
    if len(data) <= limit:
        return data
    # A continuation byte is 0b10xxxxxx: step back to the start of a character.
    end = limit
    while end > 0 and data[end] & 0xC0 == 0x80:
        end -= 1
    return data[:end]


class FrameCodec:
    """One side of a WebSocket's framing. `client` says which side masks (RFC 6455 5.1)."""

    def __init__(self, *, client: bool, max_message_size: int) -> None:
        self.client = client
        self.max_message_size = max_message_size
        self._buffer = bytearray()
        # A fragmented message in progress: its opcode (0: none), the bytes so
        # far, and for text an incremental UTF-8 check (1007 at the fragment
        # that breaks it, as wsproto does).
        self._message_opcode = 0
        self._fragments = bytearray()
        self._utf8: codecs.IncrementalDecoder | None = None
        self._discarding = False
        self._skip = 0  # payload bytes still to drop while discarding
        #: True once a close frame was read or the input was refused.
        self.ended = False
        #: The payload of the latest PING not yet answered (see `take_ping`).
        self.ping: bytes | None = None
        #: PONG frames received so far.
        self.pongs = 0
        self._keys = b""  # mask keys not yet used (client side)
        self._key_position = 0

    # ---------------------------------------------------------------- receive

    def receive_data(self, data: bytes) -> None:
        """Bytes from the peer, in order."""
        if self._discarding:
            skip = self._skip
            if skip:
                if skip >= len(data):
                    self._skip = skip - len(data)
                    return
                data = data[skip:]
                self._skip = 0
        self._buffer += data

    def take_ping(self) -> bytes | None:
        """The payload to answer with a PONG, once; None if no PING is waiting."""
        payload, self.ping = self.ping, None
        return payload

    def start_discarding(self) -> None:
        """Our close frame is out: from now on only the peer's close matters (RFC 6455 5.5.1)."""
        self._discarding = True
        self._fragments = bytearray()
        self._message_opcode = 0
        self._utf8 = None
        self.ping = None

    def next_message(self) -> str | bytes | Close | None:
        """The next message or close the received bytes complete; None when more are needed.

        Raises ProtocolError (once) for anything RFC 6455 does not allow.
        """
        if self.ended:
            return None
        try:
            return self._next()
        except ProtocolError:
            self.ended = True
            self._buffer = bytearray()
            raise

    def _next(self) -> str | bytes | Close | None:
        buffer = self._buffer
        while True:
            size = len(buffer)
            if size < 2:
                return None
            first = buffer[0]
            second = buffer[1]
            self._check_start(first, second)
            length = second & 0x7F
            if length < 126:
                offset = 2
            elif length == 126:
                if size < 4:
                    return None
                length = (buffer[2] << 8) | buffer[3]
                offset = 4
                if length < 126:
                    raise ProtocolError(PROTOCOL_ERROR, "a 2-byte length where 1 byte would do")
            else:
                if size < 10:
                    return None
                length = int.from_bytes(buffer[2:10], "big")
                offset = 10
                if length >> 63:
                    raise ProtocolError(PROTOCOL_ERROR, "the most significant bit of a 64-bit length is set")
                if length < 65536:
                    raise ProtocolError(PROTOCOL_ERROR, "an 8-byte length where 2 bytes would do")
            opcode = first & 0x0F
            if self._discarding and opcode < 8:
                # Skip the payload as it comes; keep nothing of it.
                present = size - offset - (4 if second & 0x80 else 0)
                if present < 0:
                    return None
                if present >= length:
                    del buffer[: size - present + length]
                    continue
                self._skip = length - present
                buffer.clear()
                return None
            if opcode < 8:
                # Decided from the header alone, before any payload is buffered.
                if opcode == CONTINUATION:
                    if not self._message_opcode:
                        raise ProtocolError(PROTOCOL_ERROR, "a continuation frame without a message")
                elif self._message_opcode:
                    raise ProtocolError(PROTOCOL_ERROR, "a new message began inside a fragmented one")
                if length + len(self._fragments) > self.max_message_size:
                    raise ProtocolError(TOO_BIG, f"message over {self.max_message_size} bytes")
            if second & 0x80:
                end = offset + 4 + length
                if size < end:
                    return None
                key = bytes(buffer[offset : offset + 4])
                payload = mask(bytes(buffer[offset + 4 : end]), key)
            else:
                end = offset + length
                if size < end:
                    return None
                payload = bytes(buffer[offset:end])
            del buffer[:end]
            if opcode == BINARY or opcode == TEXT:
                if first & 0x80:
                    if opcode == BINARY:
                        return payload
                    try:
                        return payload.decode("utf-8")
                    except UnicodeDecodeError:
                        raise ProtocolError(INVALID_DATA, "a text message that is not UTF-8") from None
                self._begin_fragments(opcode, payload)
            elif opcode == CONTINUATION:
                message = self._continue_fragments(payload, first & 0x80)
                if message is not None:
                    return message
            elif opcode == PING:
                if not self._discarding:
                    self.ping = payload
            elif opcode == PONG:
                self.pongs += 1
            else:
                self.ended = True
                return _parse_close(payload)

    def _check_start(self, first: int, second: int) -> None:
        """What the first two bytes of a frame already decide (as soon as they arrive)."""
        if first & 0x70:
            raise ProtocolError(PROTOCOL_ERROR, "reserved bits set without an extension")
        opcode = first & 0x0F
        if opcode >= 0x8:
            if opcode > PONG:
                raise ProtocolError(PROTOCOL_ERROR, f"unknown opcode {opcode}")
            if not first & 0x80:
                raise ProtocolError(PROTOCOL_ERROR, "a fragmented control frame")
            if second & 0x7F > MAX_CONTROL_PAYLOAD:
                raise ProtocolError(PROTOCOL_ERROR, "a control frame over 125 bytes")
        elif opcode > BINARY:
            raise ProtocolError(PROTOCOL_ERROR, f"unknown opcode {opcode}")
        if bool(second & 0x80) == self.client:  # RFC 6455 5.1: clients mask, servers do not
            raise ProtocolError(PROTOCOL_ERROR, "frame masking is wrong for this side")

    def _begin_fragments(self, opcode: int, payload: bytes) -> None:
        self._message_opcode = opcode
        self._fragments = bytearray(payload)
        if opcode == TEXT:
            self._utf8 = codecs.getincrementaldecoder("utf-8")()
            self._check_utf8(payload, False)

    def _continue_fragments(self, payload: bytes, final: int) -> str | bytes | None:
        opcode = self._message_opcode
        self._fragments += payload
        if opcode == TEXT:
            self._check_utf8(payload, bool(final))
        if not final:
            return None
        data = bytes(self._fragments)
        self._fragments = bytearray()
        self._message_opcode = 0
        self._utf8 = None
        return data.decode("utf-8") if opcode == TEXT else data

    def _check_utf8(self, payload: bytes, final: bool) -> None:
        assert self._utf8 is not None
        try:
            self._utf8.decode(payload, final)
        except UnicodeDecodeError:
            raise ProtocolError(INVALID_DATA, "a text message that is not UTF-8") from None

    # ------------------------------------------------------------------- send

    def encode_message(self, message: str | bytes) -> bytes:
        """One message as one frame."""
        if type(message) is str:
            return self.encode_frame(TEXT, message.encode("utf-8"))
        if isinstance(message, bytes | bytearray | memoryview):
            return self.encode_frame(BINARY, bytes(message))
        raise TypeError("a WebSocket message is str or bytes")

    def encode_close(self, code: int, reason: str = "") -> bytes:
        """A close frame; the reason is cut to fit 125 bytes, on a character boundary."""
        if code in (NO_STATUS, ABNORMAL, 1015):
            code = NORMAL  # local-only codes never travel (RFC 6455 7.4.1)
        return self.encode_frame(CLOSE, struct.pack("!H", code) + truncate_utf8(reason, MAX_CLOSE_REASON_BYTES))

    def encode_frame(self, opcode: int, payload: bytes) -> bytes:
        """One final frame; masked on the client side with a fresh key."""
        if self.client:
            # RFC 6455 5.3: an unpredictable key per frame, from the OS's
            # CSPRNG, 64 keys per system call.
            position = self._key_position
            if position >= len(self._keys):
                self._keys, position = os.urandom(256), 0
            key = self._keys[position : position + 4]
            self._key_position = position + 4
            return _header(opcode, len(payload), True) + key + mask(payload, key)
        return _header(opcode, len(payload), False) + payload


def _parse_close(payload: bytes) -> Close:
    """RFC 6455 5.5.1 and 7.4: a close payload is empty, or a valid code and a UTF-8 reason."""
    if not payload:
        return Close(NO_STATUS, "")
    if len(payload) == 1:
        raise ProtocolError(PROTOCOL_ERROR, "a close frame with a 1-byte payload")
    code = (payload[0] << 8) | payload[1]
    if not close_code_allowed(code):
        raise ProtocolError(PROTOCOL_ERROR, f"close code {code} may not be sent")
    try:
        reason = payload[2:].decode("utf-8")
    except UnicodeDecodeError:
        raise ProtocolError(INVALID_DATA, "a close reason that is not UTF-8") from None
    return Close(code, reason)
