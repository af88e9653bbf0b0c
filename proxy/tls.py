"""TLS for the proxy's two sockets, with the hot path in C (issue 9).

Trio's `SSLStream` is general: every `receive_some` and `send_all` goes
through a lock-protected retry loop in Python, a conflict detector and the
socket stream's own wrappers, which costs more per 20 ms audio frame than the
framing does (`python -m bench.tls_cost`). Here TLS is `ssl.SSLObject`
(OpenSSL) over two `MemoryBIO`s, and ciphertext moves with `os.read` /
`os.write` on the socket's descriptor driven by `trio.lowlevel.wait_readable`
/ `wait_writable`, the same direct non-blocking I/O as the plain transport
(proxy/ws/transport.py): per frame one `read` or one `write` system call,
the encryption in OpenSSL, and a few Python calls.

`TlsTransport` is a `proxy.ws.transport.Transport`, so the WebSocket
(proxy/ws/socket.py) runs on it unchanged, direct writes included.

The `SSLContext`s are built once per process (`upstream_context`,
`server_context`): `ssl.create_default_context()` loads the system's CA
store, about 25 ms of CPU here, which in the event loop would stall every
other session of the worker for more than a frame at each connect.

A failed TLS handshake is logged (with the OpenSSL reason) on both legs,
since a wrong CA file or a client speaking plain HTTP to a TLS port would
otherwise look like a timeout or nothing at all.
"""

from __future__ import annotations

import functools
import logging
import os
import ssl

import trio

from .ws.transport import RECEIVE_BYTES, TransportBroken

log = logging.getLogger("proxy")


def upstream_context(ca_file: str | None) -> ssl.SSLContext:
    """The client context for wss:// upstreams: one per process (per trust setting).

    `ca_file` is OPENAI_PROXY_UPSTREAM_CA_FILE; without it the system's store
    is used, which OpenSSL lets SSL_CERT_FILE / SSL_CERT_DIR replace (they
    are part of the cache key, so a changed environment is honoured).
    """
    return _client_context(ca_file, os.environ.get("SSL_CERT_FILE"), os.environ.get("SSL_CERT_DIR"))


@functools.cache
def _client_context(ca_file: str | None, _cert_file: str | None, _cert_dir: str | None) -> ssl.SSLContext:
    return ssl.create_default_context(cafile=ca_file) if ca_file else ssl.create_default_context()


def server_context(cert_path: str, key_path: str) -> ssl.SSLContext:
    """The context that serves wss:// to clients (OPENAI_PROXY_TLS_CERT_PATH / _KEY_PATH)."""
    context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    context.load_cert_chain(cert_path, key_path)
    return context


class TlsTransport:
    """TLS over a connected `trio.SocketStream`, client or server side.

    `do_handshake` first (raises `trio.BrokenResourceError` from the
    `ssl.SSLError`, after logging it); then the transport interface.

    Encrypted bytes cannot be taken back, so when the kernel takes only part
    of a frame's ciphertext the rest waits here (`pending`) and
    `send_nowait` reports one byte of the frame as not taken: the WebSocket
    keeps that byte as the frame's tail and offers it to `send_all` before
    anything else, which then sends the pending ciphertext (the byte is
    already inside it). So ciphertext leaves in the order it was made, and
    a TLS record is never cut by another (the peer would end the session).
    """

    def __init__(
        self,
        transport_stream: trio.SocketStream,
        context: ssl.SSLContext,
        *,
        server_side: bool,
        server_hostname: str | None = None,
        direction: str = "upstream",
    ) -> None:
        self._stream = transport_stream  # owns the socket; closing it wakes any waiter
        self._fd = transport_stream.socket.fileno()
        self._incoming = ssl.MemoryBIO()
        self._outgoing = ssl.MemoryBIO()
        self._ssl = context.wrap_bio(
            self._incoming, self._outgoing, server_side=server_side, server_hostname=server_hostname
        )
        self._direction = direction
        #: Ciphertext made but not yet taken by the kernel (it goes before anything else).
        self.pending = b""
        self._owed = b""  # the end of a frame reported as not taken (it is inside `pending`)
        # True after a read that emptied the socket: the next bytes are ~20 ms
        # away, so wait for readiness before reading instead of failing with EAGAIN.
        self._drained = True
        self._broken: BaseException | None = None
        self._closed = False
        # The first read after the handshake always asks OpenSSL: data that
        # came with the handshake's last flight may already be inside it.
        self._after_handshake = True

    # --------------------------------------------------------------- handshake

    async def do_handshake(self) -> None:
        """Run the TLS handshake; logs and raises BrokenResourceError if it fails."""
        ssl_object = self._ssl
        try:
            while True:
                try:
                    ssl_object.do_handshake()
                    break
                except ssl.SSLWantReadError:
                    if self._outgoing.pending:
                        await self._send_pending(self._outgoing.read())
                    if not await self._read_ciphertext():
                        raise ConnectionResetError("the peer closed the connection during the TLS handshake")
            if self._outgoing.pending:
                await self._send_pending(self._outgoing.read())
        except (ssl.SSLError, OSError, TransportBroken) as error:
            cause = error.__cause__ if isinstance(error, TransportBroken) and error.__cause__ else error
            log.log(
                # An upstream that fails TLS is the operator's problem; a
                # stranger's bad handshake on the listener is not.
                logging.WARNING if self._direction == "upstream" else logging.INFO,
                "TLS handshake failed",
                extra={"direction": self._direction, "detail": f"{type(cause).__name__}: {cause}"},
            )
            if self._outgoing.pending:  # the alert that tells the peer why, if it can go now
                try:
                    self._write_nowait(self._outgoing.read())
                except TransportBroken:
                    pass
            self._broken = cause
            raise trio.BrokenResourceError(f"TLS handshake failed: {cause}") from cause

    # ------------------------------------------------------------------ receive

    async def receive(self) -> bytes:
        """Some plaintext, waiting as needed; b"" once the peer has closed (close_notify or EOF)."""
        ssl_object = self._ssl
        incoming = self._incoming
        while True:
            if self._broken is not None:
                raise TransportBroken(str(self._broken)) from self._broken
            if not incoming.pending and not ssl_object.pending() and not self._after_handshake:
                # Nothing to decrypt: read first (a read that fails costs an exception).
                if not await self._read_ciphertext():
                    return b""
            self._after_handshake = False
            try:
                data = ssl_object.read(RECEIVE_BYTES)
            except ssl.SSLWantReadError:
                data = None
            except ssl.SSLZeroReturnError:
                return b""
            except ssl.SSLError as error:
                self._broken = error
                raise TransportBroken(str(error)) from error
            if data is not None:
                # More whole records may already be here: take them in this call.
                while (incoming.pending or ssl_object.pending()) and len(data) < RECEIVE_BYTES:
                    try:
                        more = ssl_object.read(RECEIVE_BYTES - len(data))
                    except (ssl.SSLWantReadError, ssl.SSLZeroReturnError):
                        break
                    except ssl.SSLError as error:
                        self._broken = error
                        break  # reported by the next call, after these bytes
                    data += more
                if self._outgoing.pending and not self.pending:  # e.g. a TLS 1.3 key update's answer
                    self._write_nowait(self._outgoing.read())
                return data
            if not await self._read_ciphertext():
                return b""

    async def _read_ciphertext(self) -> bool:
        """Feed the bytes the socket has into OpenSSL; False at EOF."""
        fd = self._fd
        while True:
            try:
                if self._drained:
                    await trio.lowlevel.wait_readable(fd)
                else:
                    await trio.lowlevel.checkpoint()
            except (trio.ClosedResourceError, OSError) as error:
                raise TransportBroken("closed") from error
            if self._closed:
                raise TransportBroken("closed")
            try:
                data = os.read(fd, RECEIVE_BYTES)
            except BlockingIOError:
                self._drained = True
                continue
            except OSError as error:
                self._broken = error
                raise TransportBroken(str(error)) from error
            self._drained = len(data) < RECEIVE_BYTES
            if not data:
                return False
            self._incoming.write(data)
            return True

    # --------------------------------------------------------------------- send

    def send_nowait(self, data: bytes | memoryview) -> int:
        """Encrypt `data` and write what the kernel takes now; how many bytes of `data` count as sent.

        All of them, or all but the last when ciphertext had to wait (see the
        class docstring); 0 if earlier ciphertext is still waiting.
        """
        if self._broken is not None or self._closed:
            raise TransportBroken("closed") from self._broken
        if self.pending or not data:
            return 0
        try:
            self._ssl.write(data)
        except ssl.SSLError as error:
            self._broken = error
            raise TransportBroken(str(error)) from error
        if self._write_nowait(self._outgoing.read()):
            return len(data)
        self._owed = bytes(data[-1:])
        return len(data) - 1

    async def send_all(self, data: bytes | memoryview) -> None:
        """Send all of `data` after any pending ciphertext, waiting as needed."""
        if self._broken is not None or self._closed:
            raise TransportBroken("closed") from self._broken
        view = memoryview(data)
        owed = self._owed
        if owed:
            # The WebSocket offers the tail `send_nowait` left first, always.
            if bytes(view[: len(owed)]) != owed:
                self._broken = TransportBroken("a write came before the tail of the frame ahead of it")
                raise self._broken
            view = view[len(owed) :]
            self._owed = b""
        ciphertext = b""
        if view:
            try:
                self._ssl.write(view)
            except ssl.SSLError as error:
                self._broken = error
                raise TransportBroken(str(error)) from error
            ciphertext = self._outgoing.read()
        await self._send_pending(ciphertext)

    def _write_nowait(self, ciphertext: bytes) -> bool:
        """Write `pending` + `ciphertext` as far as the kernel takes it; True if all of it went."""
        if self.pending:
            ciphertext = self.pending + ciphertext
            self.pending = b""
        try:
            sent = os.write(self._fd, ciphertext)
        except BlockingIOError:
            sent = 0
        except OSError as error:
            self._broken = error
            raise TransportBroken(str(error)) from error
        if sent < len(ciphertext):
            self.pending = ciphertext[sent:]
            return False
        return True

    async def _send_pending(self, ciphertext: bytes) -> None:
        if self._write_nowait(ciphertext):
            return
        while self.pending:
            try:
                await trio.lowlevel.wait_writable(self._fd)
            except (trio.ClosedResourceError, OSError) as error:
                raise TransportBroken("closed") from error
            if self._closed:
                raise TransportBroken("closed")
            self._write_nowait(b"")

    # -------------------------------------------------------------------- close

    async def aclose(self) -> None:
        """Send close_notify if it can go now (never waits for the peer's), then close; idempotent."""
        if self._closed:
            return
        self._closed = True
        if self._broken is None and not self.pending:
            try:
                self._ssl.unwrap()
            except (ssl.SSLError, ValueError):
                pass  # SSLWantReadError: the peer's close_notify is not awaited
            try:
                if self._outgoing.pending:
                    self._write_nowait(self._outgoing.read())
            except TransportBroken:
                pass
        with trio.CancelScope(shield=True):
            try:
                await self._stream.aclose()
            except (trio.BrokenResourceError, trio.ClosedResourceError):
                pass
