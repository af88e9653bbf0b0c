"""Issue 9: TLS on both legs through proxy/tls.py (SSLObject over MemoryBIO, direct I/O).

Three layers, as the rest of the suite: the `TlsTransport` itself, and the
proxy's `WebSocket` on it, against Trio's own `SSLStream` as the independent
peer (partial writes, ordering, fragmented reads, failed handshakes), the one
`SSLContext` per process, and whole turns through the proxy with wss:// on
both legs. Certificates come
from a throwaway CA (trustme); nothing leaves loopback.
"""

from __future__ import annotations

import logging
import socket as stdlib_socket
import ssl
from functools import partial

import pytest
import trio
import trustme
from trio_websocket import open_websocket_url

from proxy.config import ConfigError, load_config
from proxy.testing import AgentClient
from proxy.tls import TlsTransport, upstream_context
from proxy.ws.codec import FrameCodec
from proxy.ws.socket import WebSocket
from proxy.ws.transport import TransportBroken

from .tls_relay import relay_to
from .oracles import validate_deepgram_server_message

DEADLINE = 10


@pytest.fixture(scope="module")
def ca() -> trustme.CA:
    return trustme.CA()


@pytest.fixture(scope="module")
def issued(ca: trustme.CA) -> trustme.LeafCert:
    return ca.issue_cert("127.0.0.1", "localhost")


@pytest.fixture
def ca_file(ca, tmp_path) -> str:
    path = tmp_path / "ca.pem"
    ca.cert_pem.write_to_path(str(path))
    return str(path)


@pytest.fixture
def cert_files(issued, tmp_path) -> tuple[str, str]:
    cert, key = tmp_path / "server.pem", tmp_path / "server.key"
    issued.private_key_pem.write_to_path(str(key))
    with cert.open("wb") as out:
        for blob in issued.cert_chain_pems:
            out.write(blob.bytes())
    return str(cert), str(key)


def server_side_context(issued: trustme.LeafCert) -> ssl.SSLContext:
    context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    issued.configure_cert(context)
    return context


def trusting(ca: trustme.CA) -> ssl.SSLContext:
    context = ssl.create_default_context()
    ca.configure_trust(context)
    return context


async def tls_pair(ca, issued, *, sndbuf: int | None = None) -> tuple[TlsTransport, trio.SSLStream]:
    """A TlsTransport (client side) and Trio's SSLStream (server side) over a socket pair, handshaken."""
    left, right = trio.socket.socketpair()
    if sndbuf:
        left.setsockopt(stdlib_socket.SOL_SOCKET, stdlib_socket.SO_SNDBUF, sndbuf)
        right.setsockopt(stdlib_socket.SOL_SOCKET, stdlib_socket.SO_RCVBUF, sndbuf)
    ours = TlsTransport(trio.SocketStream(left), trusting(ca), server_side=False, server_hostname="localhost")
    theirs = trio.SSLStream(trio.SocketStream(right), server_side_context(issued), server_side=True)
    async with trio.open_nursery() as nursery:
        nursery.start_soon(ours.do_handshake)
        nursery.start_soon(theirs.do_handshake)
    return ours, theirs


async def receive_exactly(stream: trio.abc.ReceiveStream, size: int) -> bytes:
    data = bytearray()
    while len(data) < size:
        chunk = await stream.receive_some(65536)
        assert chunk, f"EOF after {len(data)} of {size} bytes"
        data += chunk
    return bytes(data)


# ---------------------------------------------------------------- the stream


async def test_a_partial_write_keeps_its_rest_ahead_of_later_writes(ca, issued):
    """The kernel takes part of a 1 MiB frame's ciphertext: the transport reports its last
    byte as not taken, and the tail the WebSocket then offers sends the waiting ciphertext
    before a later write (a pong, say). A TLS record cut by another would end the
    connection at the peer (bad MAC)."""
    big = bytes(range(256)) * 4096  # 1 MiB
    later = b"the pong that came next"
    with trio.fail_after(DEADLINE):
        ours, theirs = await tls_pair(ca, issued, sndbuf=4096)
        sent = ours.send_nowait(big)  # the peer is not reading yet: only part went out
        assert sent == len(big) - 1 and ours.pending
        assert ours.send_nowait(later) == 0  # nothing jumps the queue
        received = b""

        async def read_all() -> None:
            nonlocal received
            received = await receive_exactly(theirs, len(big) + len(later))

        async with trio.open_nursery() as nursery:
            nursery.start_soon(read_all)
            await ours.send_all(memoryview(big)[sent:])  # the tail, as proxy/ws/socket.py does
            await ours.send_all(later)
        assert not ours.pending
        assert received == big + later


async def test_a_write_that_is_not_the_owed_tail_is_refused(ca, issued):
    """Anything but the tail after a partial write would corrupt the stream: refused, broken."""
    with trio.fail_after(DEADLINE):
        ours, _theirs = await tls_pair(ca, issued, sndbuf=4096)
        assert ours.send_nowait(b"x" * (1 << 20)) == (1 << 20) - 1
        with pytest.raises(TransportBroken):
            await ours.send_all(b"a pong in the middle")
        with pytest.raises(TransportBroken):
            ours.send_nowait(b"anything")


async def test_websocket_on_tls_answers_a_ping_after_a_partial_frame(ca, issued):
    """The proxy's WebSocket on TlsTransport: a 1 MiB binary frame the kernel takes only
    part of (write_now leaves a tail), a PING from the peer meanwhile; the peer reads the
    whole frame, then the pong, never one inside the other (issue 9 items 2 and 3)."""
    big = bytes(range(256)) * 4096
    with trio.fail_after(DEADLINE):
        ours, theirs = await tls_pair(ca, issued, sndbuf=4096)
        socket = WebSocket(ours, FrameCodec(client=True, max_message_size=1 << 21))
        assert socket.write_now(big) and socket.tail_pending
        await theirs.send_all(b"\x89\x04ping")  # an unmasked PING from the server side
        peer = FrameCodec(client=False, max_message_size=1 << 21)
        got: list = []

        async def read_peer() -> None:
            while len(got) < 1 or peer.pongs < 1:
                peer.receive_data(await theirs.receive_some(65536))
                while (message := peer.next_message()) is not None:
                    got.append(message)

        async def answer_ping() -> None:
            with trio.move_on_after(0.5):
                await socket.get_message()  # reads the PING, answers it through the ordered path

        async with trio.open_nursery() as nursery:
            nursery.start_soon(read_peer)
            nursery.start_soon(answer_ping)
            await socket.flush()
        assert got == [big] and peer.pongs == 1
async def test_fragmented_records_are_reassembled(ca, issued):
    """Records arriving in pieces (many small TLS writes, TCP split anywhere) read back whole."""
    payload = bytes(range(251)) * 1000
    with trio.fail_after(DEADLINE):
        ours, theirs = await tls_pair(ca, issued, sndbuf=2048)

        async def send_in_pieces() -> None:
            for start in range(0, len(payload), 997):
                await theirs.send_all(payload[start : start + 997])

        async with trio.open_nursery() as nursery:
            nursery.start_soon(send_in_pieces)
            data = bytearray()
            while len(data) < len(payload):
                data += await ours.receive()
            assert data == payload
        await theirs.aclose()  # close_notify: the end of the stream, not an error
        assert await ours.receive() == b""


async def test_failed_handshake_is_logged_with_the_reason(ca, issued, caplog):
    """Issue 9: a TLS handshake that fails is logged (it used to pass silently)."""
    caplog.set_level(logging.INFO, logger="proxy")
    left, right = trio.socket.socketpair()
    untrusting = ssl.create_default_context(cafile=None)
    untrusting.load_verify_locations(cadata=trustme.CA().cert_pem.bytes().decode())  # some other CA
    ours = TlsTransport(trio.SocketStream(left), untrusting, server_side=False, server_hostname="localhost")
    theirs = trio.SSLStream(trio.SocketStream(right), server_side_context(issued), server_side=True)
    with trio.fail_after(DEADLINE):
        async with trio.open_nursery() as nursery:
            nursery.start_soon(partial(_ignore_broken, theirs.do_handshake))
            with pytest.raises(trio.BrokenResourceError) as caught:
                await ours.do_handshake()
            await ours.aclose()
    assert isinstance(caught.value.__cause__, ssl.SSLCertVerificationError)
    [record] = [r for r in caplog.records if r.getMessage() == "TLS handshake failed"]
    assert record.levelno == logging.WARNING and record.direction == "upstream"
    assert "certificate verify failed" in record.detail


async def _ignore_broken(call) -> None:
    try:
        await call()
    except trio.BrokenResourceError:
        pass


# ---------------------------------------------------------- one SSLContext


def test_upstream_ca_file_setting(ca_file):
    """OPENAI_PROXY_UPSTREAM_CA_FILE / --upstream-ca-file (P8 naming); a missing file is a config error."""
    base = {"OPENAI_API_KEY": "sk-x"}
    config = load_config([], environ={**base, "OPENAI_PROXY_UPSTREAM_CA_FILE": ca_file}, cwd="/nonexistent")
    assert config.upstream_ca_file == ca_file
    assert load_config(["--upstream-ca-file", ca_file], environ=base, cwd="/nonexistent").upstream_ca_file == ca_file
    assert load_config([], environ=base, cwd="/nonexistent").upstream_ca_file is None
    with pytest.raises(ConfigError, match="OPENAI_PROXY_UPSTREAM_CA_FILE"):
        load_config([], environ={**base, "OPENAI_PROXY_UPSTREAM_CA_FILE": ca_file + ".missing"}, cwd="/nonexistent")
    not_pem = ca_file + ".txt"
    with open(not_pem, "w") as file:
        file.write("not a certificate\n")
    with pytest.raises(ConfigError, match="no usable CA certificate"):
        load_config(["--upstream-ca-file", not_pem], environ=base, cwd="/nonexistent")


def test_the_upstream_context_is_built_once_per_trust_setting(ca_file, monkeypatch):
    monkeypatch.delenv("SSL_CERT_DIR", raising=False)
    monkeypatch.setenv("SSL_CERT_FILE", ca_file)
    assert upstream_context(ca_file) is upstream_context(ca_file)
    assert upstream_context(None) is upstream_context(None)
    assert upstream_context(None) is not upstream_context(ca_file)
    with_file = upstream_context(None)
    monkeypatch.setenv("SSL_CERT_FILE", ca_file + ".other")  # OpenSSL reads it when the context is made
    assert upstream_context(None) is not with_file


# ------------------------------------------------------ through the proxy


@pytest.fixture
async def tls_upstream(fake, issued, nursery) -> str:
    """wss:// in front of the plain fake upstream: a TLS relay, bytes both ways. Returns its URL."""

    relay = relay_to(fake.port)

    context = server_side_context(issued)
    listeners = await nursery.start(partial(trio.serve_ssl_over_tcp, relay, 0, context, host="127.0.0.1"))
    port = listeners[0].transport_listener.socket.getsockname()[1]
    return f"wss://127.0.0.1:{port}/v1/realtime?model=gpt-realtime"


class _Client:
    """An agent client over wss:// (the test helper's reader, with our CA trusted)."""

    def __init__(self, url: str, ca: trustme.CA) -> None:
        self.url, self.ca = url, ca

    async def __aenter__(self) -> AgentClient:
        self._socket_cm = open_websocket_url(self.url, ssl_context=trusting(self.ca), max_message_size=1 << 26)
        socket = await self._socket_cm.__aenter__()
        self.client = AgentClient(socket, validate_deepgram_server_message)
        self._nursery_cm = trio.open_nursery()
        nursery = await self._nursery_cm.__aenter__()
        nursery.start_soon(self.client._read)
        self._nursery = nursery
        return self.client

    async def __aexit__(self, *exc) -> None:
        self._nursery.cancel_scope.cancel()
        await self._nursery_cm.__aexit__(None, None, None)
        await self._socket_cm.__aexit__(*exc)
        assert self.client.validation_errors == []


async def test_full_turn_over_wss_on_both_legs_with_large_frames(
    proxy_factory, fake, ca, ca_file, cert_files, tls_upstream
):
    """Issue 9: wss:// client -> proxy -> wss:// upstream: setup, a 600 kB binary frame up
    (P1.1 -> P1.3 appends), a 400 kB audio delta down as one binary frame (P1.2), and a turn."""
    cert, key = cert_files
    proxy = await proxy_factory(
        upstream_url=tls_upstream, upstream_ca_file=ca_file, tls_cert_path=cert, tls_key_path=key
    )
    up_audio = bytes(range(256)) * 2344  # 600,064 bytes: many TLS records and socket reads
    down_audio = bytes(reversed(range(256))) * 1600  # 409,600 bytes
    with trio.fail_after(DEADLINE):
        async with _Client(f"wss://127.0.0.1:{proxy.server.port}/openai", ca) as client:
            await client.next("Welcome")
            await client.settings()
            await client.next("SettingsApplied")
            upstream = await fake.next_connection()
            await client.send_audio(up_audio)
            assert await upstream.wait_audio(len(up_audio)) == up_audio
            fake.responder = None
            await client.send({"type": "InjectUserMessage", "content": "a long answer, please"})
            create = await upstream.next("response.create")
            await upstream.play_response(audio=down_audio, chunk=len(down_audio), create=create)
            await client.next("AgentAudioDone")
            assert client.audio == down_audio
    assert upstream.headers["authorization"].startswith("Bearer ")


async def test_one_ssl_context_for_every_upstream_connect(proxy_factory, fake, ca_file, tls_upstream, monkeypatch):
    """Issue 9: no ssl.create_default_context() per connect (~25 ms of CPU each); the same context serves all."""
    proxy = await proxy_factory(upstream_url=tls_upstream, upstream_ca_file=ca_file)
    made: list[object] = []
    used: list[ssl.SSLContext] = []  # client-side TLS objects only (the relay makes server-side ones)
    real_create, real_wrap_bio = ssl.create_default_context, ssl.SSLContext.wrap_bio

    def create(*args, **kwargs):
        made.append(args)
        return real_create(*args, **kwargs)

    def wrap_bio(self, *args, **kwargs):
        if not kwargs.get("server_side"):
            used.append(self)
        return real_wrap_bio(self, *args, **kwargs)

    monkeypatch.setattr(ssl, "create_default_context", create)
    monkeypatch.setattr(ssl.SSLContext, "wrap_bio", wrap_bio)
    with trio.fail_after(DEADLINE):
        for _ in range(2):
            async with proxy.session(fake) as (client, _upstream):
                await client.send({"type": "InjectUserMessage", "content": "hello"})
                await client.next("AgentAudioDone")
    assert made == []
    assert len(used) == 2 and used[0] is used[1] is proxy.server.upstream_ssl


async def test_upstream_tls_failure_is_logged_and_the_ca_file_is_what_trusts(
    proxy_factory, fake, ca_file, tls_upstream, caplog, monkeypatch
):
    """Without OPENAI_PROXY_UPSTREAM_CA_FILE (and SSL_CERT_FILE at the system store) the
    throwaway CA is not trusted: UPSTREAM_UNAVAILABLE (P2.3) and a log record saying why."""
    caplog.set_level(logging.INFO, logger="proxy")
    monkeypatch.delenv("SSL_CERT_FILE", raising=False)
    monkeypatch.delenv("SSL_CERT_DIR", raising=False)
    proxy = await proxy_factory(upstream_url=tls_upstream)
    with trio.fail_after(DEADLINE):
        async with proxy.connect() as client:
            await client.settings()
            error = await client.next("Error")
            assert error["code"] == "UPSTREAM_UNAVAILABLE" and "TLS" in error["description"]
    [record] = [r for r in caplog.records if r.getMessage() == "TLS handshake failed"]
    assert record.direction == "upstream" and "certificate verify failed" in record.detail


async def test_client_tls_failures_are_logged(proxy_factory, fake, ca, cert_files, caplog):
    """Issue 9: a client that does not trust the certificate, or speaks plain HTTP to the
    wss:// port, leaves a record (info: strangers are not the operator's error); the proxy
    serves the next client."""
    caplog.set_level(logging.INFO, logger="proxy")
    cert, key = cert_files
    proxy = await proxy_factory(tls_cert_path=cert, tls_key_path=key)
    port = proxy.server.port
    with trio.fail_after(DEADLINE):
        untrusted = await trio.open_ssl_over_tcp_stream("127.0.0.1", port, ssl_context=ssl.create_default_context())
        with pytest.raises(trio.BrokenResourceError):
            await untrusted.do_handshake()
        await trio.aclose_forcefully(untrusted)
        plain = await trio.open_tcp_stream("127.0.0.1", port)
        await plain.send_all(b"GET /openai HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\n")
        try:
            assert not (await plain.receive_some(100)).startswith(b"HTTP/")
        except trio.BrokenResourceError:
            pass
        await trio.aclose_forcefully(plain)
        async with _Client(f"wss://127.0.0.1:{port}/openai", ca) as client:
            await client.next("Welcome")
        while len([r for r in caplog.records if r.getMessage() == "TLS handshake failed"]) < 2:
            await trio.sleep(0.01)
    records = [r for r in caplog.records if r.getMessage() == "TLS handshake failed"]
    assert [r.direction for r in records] == ["client", "client"]
    assert all(r.levelno == logging.INFO for r in records)
    assert "closed the connection" in records[0].detail  # that client gives up without an alert
    assert "SSLError" in records[1].detail, records[1].detail  # e.g. HTTP_REQUEST: not TLS at all
    await fake.next_connection()
