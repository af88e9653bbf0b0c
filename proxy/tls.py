"""TLS for the proxy's two sockets, with the hot path in C (issue 9).

Trio's `SSLStream` is general: every `receive_some` and `send_all` goes
through a lock-protected retry loop in Python, a conflict detector and the
socket stream's own wrappers, which costs more per 20 ms audio frame than the
framing does. Here TLS is `ssl.SSLObject` (OpenSSL) over two `MemoryBIO`s,
and ciphertext moves with `os.read` / `os.write` on the socket's descriptor
driven by `trio.lowlevel.wait_readable` / `wait_writable`, the same direct
non-blocking I/O the plain socket uses (proxy/fastws.py): per frame one
`read` or one `write` system call, the encryption in OpenSSL, and a few
Python calls.

Ciphertext leaves in the order it was made, always: a partial write's rest
stays in the stream (`pending`) and every later write goes behind it, so a
frame can never be cut by another (a TLS record cut in two ends the session).

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

log = logging.getLogger("proxy")

RECEIVE_BYTES = 65536


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


class TlsStream(trio.abc.Stream):
    """TLS over a connected `trio.SocketStream`; client or server side.

    `do_handshake` first (raises `trio.BrokenResourceError` from the
    `ssl.SSLError`, after logging it); then `receive_some` / `send_all` like
    any Trio stream, plus `write_nowait` for the proxy's direct writes.
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
        self.transport_stream = transport_stream
        self._fd = transport_stream.socket.fileno()
        self._incoming = ssl.MemoryBIO()
        self._outgoing = ssl.MemoryBIO()
        self._ssl = context.wrap_bio(
            self._incoming, self._outgoing, server_side=server_side, server_hostname=server_hostname
        )
        self._direction = direction
        #: Ciphertext made but not yet taken by the kernel (it goes before anything else).
        self.pending = b""
        # True after a read that emptied the socket: the next bytes are ~20 ms
        # away, so wait for readiness before reading instead of failing with EAGAIN.
        self._drained = True
        self._broken: BaseException | None = None
        self._closed = False

    @property
    def socket(self) -> trio.socket.SocketType:
        return self.transport_stream.socket

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
                    await self._flush_outgoing()
                    if not await self._read_ciphertext():
                        raise ConnectionResetError("the peer closed the connection during the TLS handshake")
            await self._flush_outgoing()
        except (ssl.SSLError, OSError, trio.BrokenResourceError) as error:
            cause = error.__cause__ if isinstance(error, trio.BrokenResourceError) and error.__cause__ else error
            log.log(
                logging.WARNING if self._direction == "upstream" else logging.INFO,
                "TLS handshake failed",
                extra={"direction": self._direction, "detail": f"{type(cause).__name__}: {cause}"},
            )
            if self._outgoing.pending:  # the alert that tells the peer why, if it can go now
                try:
                    self._write_outgoing_nowait()
                except trio.BrokenResourceError:
                    pass
            self._broken = cause
            raise trio.BrokenResourceError(f"TLS handshake failed: {cause}") from cause

    # ------------------------------------------------------------------ receive

    async def receive_some(self, max_bytes: int | None = None) -> bytes:
        """Some plaintext; b"" once the peer has closed (close_notify or EOF)."""
        size = max_bytes or RECEIVE_BYTES
        ssl_object = self._ssl
        incoming = self._incoming
        while True:
            if self._broken is not None:
                raise trio.BrokenResourceError from self._broken
            if not incoming.pending and not ssl_object.pending():
                # Nothing to decrypt: read first (a read that fails costs an exception).
                if not await self._read_ciphertext():
                    return b""
            try:
                data = ssl_object.read(size)
            except ssl.SSLWantReadError:
                data = None
            except ssl.SSLZeroReturnError:
                return b""
            except ssl.SSLError as error:
                self._broken = error
                raise trio.BrokenResourceError from error
            if data is not None:
                # More whole records may already be here: take them in this call.
                while (incoming.pending or ssl_object.pending()) and len(data) < size:
                    try:
                        more = ssl_object.read(size - len(data))
                    except (ssl.SSLWantReadError, ssl.SSLZeroReturnError):
                        break
                    except ssl.SSLError as error:
                        self._broken = error
                        break  # reported by the next call, after these bytes
                    data += more
                if self._outgoing.pending:  # e.g. a TLS 1.3 key update's answer
                    self._write_outgoing_nowait()
                return data
            if not await self._read_ciphertext():
                return b""

    async def _read_ciphertext(self) -> bool:
        """Feed the bytes the socket has into OpenSSL; False at EOF."""
        fd = self._fd
        while True:
            if self._closed:
                raise trio.ClosedResourceError
            try:
                if self._drained:
                    await trio.lowlevel.wait_readable(fd)
                else:
                    await trio.lowlevel.checkpoint()
            except trio.ClosedResourceError:
                return False
            if self._closed:
                raise trio.ClosedResourceError
            try:
                data = os.read(fd, RECEIVE_BYTES)
            except BlockingIOError:
                self._drained = True
                continue
            except OSError as error:
                self._broken = error
                raise trio.BrokenResourceError from error
            self._drained = len(data) < RECEIVE_BYTES
            if not data:
                return False
            self._incoming.write(data)
            return True

    # --------------------------------------------------------------------- send

    def write_nowait(self, data: bytes) -> bool:
        """Encrypt `data` and write what the kernel takes now.

        True: all of it is on the wire. False: some ciphertext waits in the
        stream (`pending`); `flush` (or the next `send_all`) sends it first.
        Raises BrokenResourceError if the socket is gone.
        """
        if self._broken is not None or self._closed:
            raise trio.BrokenResourceError from self._broken
        try:
            self._ssl.write(data)
        except ssl.SSLError as error:
            self._broken = error
            raise trio.BrokenResourceError from error
        return self._write_outgoing_nowait()

    def _write_outgoing_nowait(self) -> bool:
        ciphertext = self._outgoing.read()
        if self.pending:
            ciphertext = self.pending + ciphertext
            self.pending = b""
        try:
            sent = os.write(self._fd, ciphertext)
        except BlockingIOError:
            sent = 0
        except OSError as error:
            self._broken = error
            raise trio.BrokenResourceError from error
        if sent < len(ciphertext):
            self.pending = ciphertext[sent:]
            return False
        return True

    async def send_all(self, data: bytes | bytearray | memoryview) -> None:
        """Encrypt and send all of `data` (after any pending ciphertext)."""
        if not self.write_nowait(bytes(data)):
            await self.flush()
        else:
            await trio.lowlevel.checkpoint()

    async def flush(self) -> None:
        """Wait until the pending ciphertext is on the wire."""
        while self.pending:
            try:
                await trio.lowlevel.wait_writable(self._fd)
            except trio.ClosedResourceError:
                raise trio.BrokenResourceError from None
            if self._closed:
                raise trio.ClosedResourceError
            self._write_outgoing_nowait()

    async def _flush_outgoing(self) -> None:
        if self._outgoing.pending and not self._write_outgoing_nowait():
            await self.flush()

    async def wait_send_all_might_not_block(self) -> None:
        await trio.lowlevel.wait_writable(self._fd)

    # -------------------------------------------------------------------- close

    async def aclose(self) -> None:
        """Send close_notify if it can go now (never waits for the peer's), then close."""
        if self._closed:
            await trio.lowlevel.checkpoint()
            return
        if self._broken is None and not self.pending:
            try:
                self._ssl.unwrap()
            except ssl.SSLError:
                pass  # SSLWantReadError: the peer's close_notify is not awaited
            try:
                self._write_outgoing_nowait()
            except trio.BrokenResourceError:
                pass
        self._closed = True
        await self.transport_stream.aclose()
