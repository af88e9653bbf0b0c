"""The Trio `WebSocket`: a `FrameCodec` (proxy/ws/codec.py) over a `Transport`.

No reader task: `get_message` reads the transport in the caller's task. All
writes (messages, pongs, pings, the close frame) go through one ordered
path owned by this object: a lock taken without a scheduling round-trip when
free, and the unsent tail of a frame the transport took only part of. A tail
stays here and every later write sends it first, so no byte of anything
else can land inside a frame. `write_now` writes without waiting at all.

States (nothing else changes them; a move the table does not list is a bug):

    OPEN     frames flow both ways.
    CLOSING  our close frame is out (or going out): reading only for the
             peer's close, until it comes or the close deadline passes.
    CLOSED   the closing handshake ended (either side began it); the
             transport is closed.
    BROKEN   the transport failed, the peer vanished without a close, or a
             write was cut mid-frame; nothing more is written; the
             transport is closed.
"""

from __future__ import annotations

import enum

import attrs
import trio

from .codec import ABNORMAL, NORMAL, PING, Close, FrameCodec, ProtocolError
from .transport import Transport, TransportBroken

# For the peer's half of the closing handshake, and for our close frame to
# get out at all: a peer that stopped reading must not hold a close forever.
CLOSE_TIMEOUT_S = 1.0


class State(enum.Enum):
    OPEN = "open"
    CLOSING = "closing"
    CLOSED = "closed"
    BROKEN = "broken"


_MOVES = {
    State.OPEN: {State.CLOSING, State.CLOSED, State.BROKEN},
    State.CLOSING: {State.CLOSED, State.BROKEN},
    State.CLOSED: set(),
    State.BROKEN: set(),
}


@attrs.frozen
class CloseReason:
    """Why a WebSocket closed: the code (RFC 6455 7.4) and its reason text."""

    code: int
    reason: str | None = None


class ConnectionClosed(Exception):
    """The WebSocket is closed (or closing); `reason` says how."""

    def __init__(self, reason: CloseReason) -> None:
        super().__init__(reason)
        self.reason = reason


class WebSocket:
    """One open WebSocket. `codec.client` says which side this is."""

    def __init__(self, transport: Transport, codec: FrameCodec) -> None:
        self._transport = transport
        self._codec = codec
        self.state = State.OPEN
        self._close_reason: CloseReason | None = None
        self._lock = trio.StrictFIFOLock()
        self._tail: memoryview | None = None  # the unsent end of a frame
        self._reading = False
        self._peer_closed = trio.Event()  # the peer's close arrived, or it went away
        self._pongs_seen = 0
        self._pong = trio.Event()
        #: Data messages received so far (for inactivity deadlines).
        self.messages_received = 0

    @property
    def closed(self) -> CloseReason | None:
        """None while open; why it closed once either side began to close."""
        return self._close_reason

    def _move(self, state: State) -> None:
        if state is self.state:
            return
        assert state in _MOVES[self.state], f"WebSocket cannot go from {self.state} to {state}"
        self.state = state

    # ---------------------------------------------------------------- receive

    async def get_message(self) -> str | bytes:
        """The next data message; raises ConnectionClosed once the connection is closed.

        Waits for the peer. PINGs are answered through the ordered write
        path, once for all those parsed together (with the latest payload),
        before the next message is returned or more is read.
        """
        if self.state is not State.OPEN:
            raise ConnectionClosed(self._reason())
        codec = self._codec
        self._reading = True
        try:
            while True:
                try:
                    message = codec.next_message()
                except ProtocolError as error:
                    await self._refuse(error)
                    raise AssertionError("not reached") from None  # pragma: no cover
                if message is not None:
                    if type(message) is bytes or type(message) is str:
                        self.messages_received += 1
                        if codec.ping is not None:  # the pings parsed before this message
                            await self._answer_ping()
                        return message
                    assert type(message) is Close
                    await self._on_peer_close(message)
                # All that was read is parsed: answer the latest ping, note pongs.
                if codec.ping is not None:
                    await self._answer_ping()
                if codec.pongs != self._pongs_seen:
                    self._pongs_seen = codec.pongs
                    self._pong.set()
                try:
                    data = await self._transport.receive()
                except TransportBroken:
                    data = b""
                if not data:
                    await self._lost("the connection was lost")
                codec.receive_data(data)
        finally:
            self._reading = False

    async def _answer_ping(self) -> None:
        payload = self._codec.take_ping()
        if payload is not None and self.state is State.OPEN:
            await self._write(self._codec.encode_frame(0xA, payload))

    async def _on_peer_close(self, close: Close) -> None:
        self._peer_closed.set()
        if self.state is State.OPEN:
            # The peer began the closing handshake: echo its code (RFC 6455 5.5.1).
            self._close_reason = CloseReason(close.code, close.reason or None)
            await self._send_close_and_end(close.code, "")
        raise ConnectionClosed(self._reason())

    async def _refuse(self, error: ProtocolError) -> None:
        """Close with the code for what the peer got wrong, then raise ConnectionClosed."""
        self._peer_closed.set()  # nothing more is read from it
        if self.state is State.OPEN:
            self._close_reason = CloseReason(error.code, error.reason)
            await self._send_close_and_end(error.code, error.reason)
        raise ConnectionClosed(self._reason())

    async def _lost(self, why: str) -> None:
        self._peer_closed.set()
        if self.state is State.OPEN:
            self._close_reason = CloseReason(ABNORMAL, why)
            self._move(State.BROKEN)
        await self._transport.aclose()
        raise ConnectionClosed(self._reason())

    def _reason(self) -> CloseReason:
        return self._close_reason or CloseReason(ABNORMAL, "the connection was lost")

    # ------------------------------------------------------------------- send

    async def send_message(self, message: str | bytes) -> None:
        """Send one message, after anything written before it; raises ConnectionClosed if closed."""
        if self.state is not State.OPEN:
            raise ConnectionClosed(self._reason())
        await self._write(self._codec.encode_message(message))

    def write_now(self, message: str | bytes) -> bool:
        """Write one message without waiting, if nothing is ahead of it.

        False: nothing was written (closed, or another write is queued or in
        progress); send it with `send_message`. True: the socket took the
        frame; if the transport took only part of it (`tail_pending`), the
        rest goes out before any later byte, and `flush()` sends it.
        """
        if self.state is not State.OPEN or self._tail is not None or self._lock.locked():
            return False
        data = self._codec.encode_message(message)
        try:
            sent = self._transport.send_nowait(data)
        except TransportBroken:
            return False  # the next awaiting write reports it
        if sent != len(data):
            self._tail = memoryview(data)[sent:]
        return True

    @property
    def tail_pending(self) -> bool:
        """Part of a frame is waiting to be sent (see `flush`)."""
        return self._tail is not None

    async def flush(self) -> None:
        """Send the tail `write_now` left, if any; raises ConnectionClosed if the socket broke."""
        await self._write(b"")

    async def ping(self, payload: bytes = b"") -> None:
        """Send a PING; `wait_pong` then waits for the answer."""
        if self.state is not State.OPEN:
            raise ConnectionClosed(self._reason())
        self._pong = trio.Event()
        await self._write(self._codec.encode_frame(PING, payload))

    async def wait_pong(self) -> None:
        """Wait for a PONG after the last `ping` (seen by the task in `get_message`)."""
        await self._pong.wait()

    async def _write(self, data: bytes) -> None:
        """The one ordered write path: the pending tail first, then `data`."""
        lock = self._lock
        try:
            lock.acquire_nowait()  # free almost always: no scheduling round-trip
        except trio.WouldBlock:
            await lock.acquire()
        try:
            if self.state is State.BROKEN:
                raise ConnectionClosed(self._reason())
            tail = self._tail
            if tail is not None:
                await self._send_all(tail)
                self._tail = None
            if data:
                transport = self._transport
                try:
                    sent = transport.send_nowait(data)
                except TransportBroken:
                    self._broken("the connection was lost")
                    raise ConnectionClosed(self._reason()) from None
                if sent != len(data):
                    await self._send_all(memoryview(data)[sent:])
        finally:
            lock.release()

    async def _send_all(self, data: memoryview | bytes) -> None:
        """Send `data`, the rest of a frame already begun. If this does not
        finish (cancelled, or the transport failed), the frame is cut and
        nothing may follow it on the wire: the socket is broken."""
        finished = False
        try:
            await self._transport.send_all(data)
            finished = True
        except TransportBroken:
            pass
        finally:
            if not finished:
                self._broken("a write was cut mid-frame")
        if not finished:
            raise ConnectionClosed(self._reason())

    def _broken(self, why: str) -> None:
        self._tail = None
        if self._close_reason is None:
            self._close_reason = CloseReason(ABNORMAL, why)
        if self.state is not State.CLOSED:
            self._move(State.BROKEN)

    # ------------------------------------------------------------------ close

    async def aclose(self, code: int = NORMAL, reason: str | None = None) -> None:
        """Close with `code` (RFC 6455 7.1.2); returns within CLOSE_TIMEOUT_S.

        The close frame (after any pending tail) and the peer's answer share
        one deadline; then the transport is closed, whatever happened.
        """
        if self.state is not State.OPEN:
            await self._end()
            return
        self._close_reason = CloseReason(code, reason)
        self._move(State.CLOSING)
        self._codec.start_discarding()
        try:
            with trio.move_on_after(CLOSE_TIMEOUT_S):
                await self._write(self._codec.encode_close(code, reason or ""))
                if self._reading:
                    await self._peer_closed.wait()  # the reading task sees the answer
                else:
                    await self._drain_until_close()
        except ConnectionClosed:
            pass
        finally:
            await self._end()

    async def _drain_until_close(self) -> None:
        """Read (discarding; memory stays bounded) until the peer's close or its end."""
        codec = self._codec
        while not self._peer_closed.is_set():
            try:
                event = codec.next_message()
            except ProtocolError:
                return
            if type(event) is Close:
                return
            if codec.ended:
                return
            try:
                data = await self._transport.receive()
            except TransportBroken:
                return
            if not data:
                return
            codec.receive_data(data)

    async def _send_close_and_end(self, code: int, reason: str) -> None:
        """Answer (or refuse) with a close frame, within the deadline, and close the transport."""
        self._move(State.CLOSING)
        self._codec.start_discarding()
        try:
            with trio.move_on_after(CLOSE_TIMEOUT_S):
                await self._write(self._codec.encode_close(code, reason))
        except ConnectionClosed:
            pass
        finally:
            await self._end()

    async def _end(self) -> None:
        if self.state is State.CLOSING:
            self._move(State.CLOSED)
        elif self.state is State.OPEN:
            self._close_reason = self._close_reason or CloseReason(ABNORMAL, "closed")
            self._move(State.BROKEN)
        await self._transport.aclose()
