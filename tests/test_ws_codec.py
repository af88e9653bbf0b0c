"""proxy/ws/codec.py: RFC 6455 framing with no I/O: bytes in, messages and close codes out.

Each validation of the codec has a case here (RFC 6455 sections 5 and 7.4).
"""

from __future__ import annotations

import os
import struct
import sys

import pytest

from proxy.ws.codec import (
    BINARY,
    CLOSE,
    CONTINUATION,
    PING,
    PONG,
    TEXT,
    Close,
    FrameCodec,
    ProtocolError,
    close_code_allowed,
    mask,
    truncate_utf8,
)


def frame(opcode: int, payload: bytes, *, final: bool = True, masked: bool = True, rsv: int = 0) -> bytes:
    """A frame as a client sends it (masked), with any length encoding it needs."""
    first = (0x80 if final else 0) | rsv | opcode
    bit = 0x80 if masked else 0
    size = len(payload)
    if size < 126:
        head = bytes((first, bit | size))
    elif size < 65536:
        head = struct.pack("!BBH", first, bit | 126, size)
    else:
        head = struct.pack("!BBQ", first, bit | 127, size)
    if not masked:
        return head + payload
    key = os.urandom(4)
    return head + key + mask(payload, key)


def server(max_message_size: int = 1 << 20) -> FrameCodec:
    return FrameCodec(client=False, max_message_size=max_message_size)


def all_events(codec: FrameCodec) -> list:
    events = []
    while (event := codec.next_message()) is not None:
        events.append(event)
    return events


def refused(data: bytes, **limits: int) -> int:
    codec = server(**limits)
    codec.receive_data(data)
    with pytest.raises(ProtocolError) as error:
        all_events(codec)
    assert codec.ended and codec.next_message() is None  # nothing is read after a refusal
    return error.value.code


def test_messages_of_every_length_encoding_come_out_whole() -> None:
    codec = server()
    payloads = [b"a" * 125, b"b" * 126, b"c" * 65535, b"d" * 65536]
    data = b"".join(frame(BINARY, each) for each in payloads) + frame(TEXT, "héllo".encode())
    codec.receive_data(data)
    assert all_events(codec) == [*payloads, "héllo"]


def test_bytes_arriving_one_at_a_time_give_the_same_messages() -> None:
    data = frame(TEXT, b"x" * 300) + frame(PING, b"p") + frame(BINARY, b"\x00\x01")
    codec = server()
    events = []
    for index in range(len(data)):
        codec.receive_data(data[index : index + 1])
        events += all_events(codec)
    assert events == ["x" * 300, b"\x00\x01"]
    assert codec.take_ping() == b"p"


def test_fragments_are_joined_with_control_frames_between() -> None:
    codec = server()
    codec.receive_data(
        frame(TEXT, "hé".encode(), final=False) + frame(PONG, b"") + frame(CONTINUATION, b"llo", final=False)
    )
    assert all_events(codec) == []
    codec.receive_data(frame(CONTINUATION, b"!"))
    assert all_events(codec) == ["héllo!"]
    assert codec.pongs == 1


def test_one_byte_fragments_cost_their_size_not_a_list_entry_each() -> None:
    """Issue: 200,001 one-byte fragments were held as 200,001 list entries."""
    codec = server(max_message_size=300_000)
    codec.receive_data(frame(BINARY, b"a", final=False) + frame(CONTINUATION, b"b", final=False) * 199_999)
    assert all_events(codec) == []
    assert isinstance(codec._fragments, bytearray) and len(codec._fragments) == 200_000
    assert sys.getsizeof(codec._fragments) < 2 * 200_000
    codec.receive_data(frame(CONTINUATION, b"c"))
    assert all_events(codec) == [b"a" + b"b" * 199_999 + b"c"]


def test_fragments_past_the_message_limit_close_with_1009() -> None:
    data = frame(BINARY, b"a" * 600, final=False) + frame(CONTINUATION, b"b" * 401)
    assert refused(data, max_message_size=1000) == 1009


def test_too_big_is_refused_from_the_header_alone() -> None:
    codec = server(max_message_size=1000)
    codec.receive_data(bytes((0x82, 0x80 | 126)) + (1001).to_bytes(2, "big"))  # no mask key, no payload yet
    with pytest.raises(ProtocolError) as error:
        codec.next_message()
    assert error.value.code == 1009


def test_pings_in_one_read_are_answered_once_with_the_latest_payload() -> None:
    codec = server()
    codec.receive_data(b"".join(frame(PING, str(index).encode()) for index in range(50)))
    assert all_events(codec) == []
    assert codec.take_ping() == b"49"
    assert codec.take_ping() is None


@pytest.mark.parametrize(
    ("payload", "close"),
    [
        (b"", Close(1005, "")),  # no code: reported as 1005 (RFC 6455 7.1.5)
        (struct.pack("!H", 1000), Close(1000, "")),
        (struct.pack("!H", 1014) + b"bad gateway", Close(1014, "bad gateway")),
        (struct.pack("!H", 4000) + "adiós".encode(), Close(4000, "adiós")),
        (struct.pack("!H", 3000), Close(3000, "")),
    ],
)
def test_close_frames_that_are_valid(payload: bytes, close: Close) -> None:
    codec = server()
    codec.receive_data(frame(CLOSE, payload) + frame(TEXT, b"after the close"))
    assert all_events(codec) == [close]
    assert codec.ended  # nothing after a close is read


@pytest.mark.parametrize("code", [0, 999, 1004, 1005, 1006, 1015, 1016, 2000, 2999, 5000, 65535])
def test_close_codes_outside_rfc_6455_7_4_are_refused_with_1002(code: int) -> None:
    assert not close_code_allowed(code)
    assert refused(frame(CLOSE, struct.pack("!H", code))) == 1002


def test_a_close_payload_of_one_byte_is_refused_with_1002() -> None:
    assert refused(frame(CLOSE, b"\x03")) == 1002


def test_a_close_reason_that_is_not_utf8_is_refused_with_1007() -> None:
    assert refused(frame(CLOSE, struct.pack("!H", 1000) + b"\xff\xfe")) == 1007


def test_the_most_significant_bit_of_a_64_bit_length_is_refused_with_1002() -> None:
    header = bytes((0x82, 0x80 | 127)) + (1 << 63 | 70000).to_bytes(8, "big")
    assert refused(header, max_message_size=1 << 62) == 1002


@pytest.mark.parametrize(
    "data",
    [
        bytes((0x89, 0x80 | 126)) + (126).to_bytes(2, "big") + b"\0" * 4 + b"p" * 126,  # PING of 126 bytes
        frame(PONG, b"x" * 126),
        frame(CLOSE, struct.pack("!H", 1000) + b"r" * 124),
        frame(PING, b"fragmented", final=False),
        frame(CLOSE, struct.pack("!H", 1000), final=False),
    ],
    ids=["ping-126", "pong-126", "close-126", "fragmented-ping", "fragmented-close"],
)
def test_control_frames_over_125_bytes_or_fragmented_are_refused_with_1002(data: bytes) -> None:
    assert refused(data) == 1002


@pytest.mark.parametrize("rsv", [0x40, 0x20, 0x10])
def test_reserved_bits_are_refused_with_1002(rsv: int) -> None:
    assert refused(frame(BINARY, b"audio", rsv=rsv)) == 1002


def test_reserved_bits_are_refused_as_soon_as_two_bytes_arrive() -> None:
    codec = server()
    codec.receive_data(bytes((0x82 | 0x40, 0x80 | 127)))  # the length bytes are still to come
    with pytest.raises(ProtocolError):
        codec.next_message()


@pytest.mark.parametrize(
    ("data", "code"),
    [
        (frame(BINARY, b"audio", masked=False), 1002),  # RFC 6455 5.1: a client must mask
        (frame(TEXT, b"\xff\xfe not utf-8"), 1007),
        (frame(TEXT, b"\xe2\x82", final=False) + frame(CONTINUATION, b"\x28"), 1007),  # broken across fragments
        (frame(TEXT, b"\xff", final=False), 1007),  # refused at the fragment that breaks it
        (frame(CONTINUATION, b"orphan"), 1002),
        (frame(TEXT, b"a", final=False) + frame(BINARY, b"b"), 1002),  # a new message inside one
        (frame(0x3, b""), 1002),  # unknown data opcode
        (frame(0xB, b""), 1002),  # unknown control opcode
        (bytes((0x82, 0x80 | 126)) + (5).to_bytes(2, "big") + b"\0" * 4 + b"12345", 1002),  # not minimal
        (bytes((0x82, 0x80 | 127)) + (5).to_bytes(8, "big") + b"\0" * 4 + b"12345", 1002),  # not minimal
    ],
)
def test_other_bad_frames_are_refused_with_the_rfc_code(data: bytes, code: int) -> None:
    assert refused(data) == code


def test_the_client_side_refuses_masked_frames_and_masks_its_own() -> None:
    codec = FrameCodec(client=True, max_message_size=1000)
    codec.receive_data(frame(TEXT, b"masked", masked=True))
    with pytest.raises(ProtocolError):
        codec.next_message()
    data = FrameCodec(client=True, max_message_size=1000).encode_message("to the upstream")
    assert data[1] & 0x80 and mask(data[6:], data[2:6]) == b"to the upstream"


def test_after_our_close_payloads_are_skipped_not_buffered() -> None:
    """Issue: 20 MiB were buffered past a 1 MiB limit while waiting for the peer's close."""
    codec = server(max_message_size=1 << 20)
    codec.start_discarding()
    big = frame(BINARY, b"x" * (4 << 20))
    for start in range(0, len(big), 65536):  # arriving as a socket delivers it
        codec.receive_data(big[start : start + 65536])
        assert codec.next_message() is None
        assert len(codec._buffer) <= 14  # a header at most; no payload kept
    codec.receive_data(frame(PING, b"ignored") + frame(CLOSE, struct.pack("!H", 1000)))
    assert all_events(codec) == [Close(1000, "")]
    assert codec.ping is None  # nothing is answered while closing


def test_an_outgoing_close_reason_is_cut_on_a_utf8_boundary() -> None:
    reason = "é" * 100  # 200 bytes of UTF-8
    data = server().encode_close(1011, reason)
    payload = data[2:]
    assert len(payload) <= 125 and payload[:2] == struct.pack("!H", 1011)
    assert payload[2:].decode("utf-8") == "é" * 61  # 122 bytes: the 62nd would not fit whole
    assert truncate_utf8("ab€", 4) == b"ab"
    assert truncate_utf8("abc", 3) == b"abc"


def test_local_only_codes_are_never_sent() -> None:
    assert server().encode_close(1006, "lost")[2:4] == struct.pack("!H", 1000)
