"""TLS listen: OPENAI_PROXY_TLS_CERT_PATH / OPENAI_PROXY_TLS_KEY_PATH serve wss://.

The certificate is made in the test by a throwaway CA (trustme); nothing
leaves loopback.
"""

from __future__ import annotations

import json
import signal
import ssl

import pytest
import trio
import trustme
from trio_websocket import open_websocket_url

from proxy.config import ConfigError, load_config
from proxy.testing import DEFAULT_SETTINGS

from .daemon import running_proxy


@pytest.fixture
def ca() -> trustme.CA:
    return trustme.CA()


@pytest.fixture
def cert_files(ca, tmp_path) -> tuple[str, str]:
    server_cert = ca.issue_cert("127.0.0.1", "localhost")
    cert, key = tmp_path / "server.pem", tmp_path / "server.key"
    server_cert.private_key_pem.write_to_path(str(key))
    with cert.open("wb") as out:
        for blob in server_cert.cert_chain_pems:
            out.write(blob.bytes())
    return str(cert), str(key)


def client_context(ca: trustme.CA) -> ssl.SSLContext:
    context = ssl.create_default_context()
    ca.configure_trust(context)
    return context


async def test_wss_session(proxy_factory, fake, ca, cert_files):
    """A client that trusts the CA gets a whole session over wss://."""
    cert, key = cert_files
    proxy = await proxy_factory(tls_cert_path=cert, tls_key_path=key)
    url = f"wss://127.0.0.1:{proxy.server.port}/openai"
    with trio.fail_after(10):
        async with open_websocket_url(url, ssl_context=client_context(ca)) as socket:
            assert json.loads(await socket.get_message())["type"] == "Welcome"
            await socket.send_message(json.dumps(DEFAULT_SETTINGS))
            while json.loads(await socket.get_message())["type"] != "SettingsApplied":
                pass
        await fake.next_connection()


async def test_untrusted_client_and_plain_ws_fail(proxy_factory, fake, ca, cert_files):
    """Without the CA the TLS handshake fails; plain ws:// to the TLS port gets no session.

    Raw streams rather than a WebSocket client, which waits forever when the
    connection breaks before its handshake completes. Afterwards the proxy
    still serves a client that does it right.
    """
    cert, key = cert_files
    proxy = await proxy_factory(tls_cert_path=cert, tls_key_path=key)
    port = proxy.server.port
    upgrade = (
        b"GET /openai HTTP/1.1\r\nHost: 127.0.0.1\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n"
        b"Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\nSec-WebSocket-Version: 13\r\n\r\n"
    )
    with trio.fail_after(10):
        untrusted = await trio.open_ssl_over_tcp_stream("127.0.0.1", port, ssl_context=ssl.create_default_context())
        with pytest.raises(trio.BrokenResourceError) as caught:
            await untrusted.do_handshake()
        assert isinstance(caught.value.__cause__, ssl.SSLCertVerificationError)
        await trio.aclose_forcefully(untrusted)

        plain = await trio.open_tcp_stream("127.0.0.1", port)
        await plain.send_all(upgrade)
        answer = b""
        # The TLS layer cannot parse it; the socket is dropped at the handshake
        # deadline. Either way no HTTP answer, let alone a 101, comes back.
        with trio.move_on_after(1):
            try:
                answer = await plain.receive_some(100)
            except trio.BrokenResourceError:
                pass
        assert not answer.startswith(b"HTTP/")
        await trio.aclose_forcefully(plain)

        async with open_websocket_url(f"wss://127.0.0.1:{port}/openai", ssl_context=client_context(ca)) as socket:
            assert json.loads(await socket.get_message())["type"] == "Welcome"
        await fake.next_connection()
    assert fake.handshakes == 1


async def test_daemon_serves_wss_from_environment(fake, ca, cert_files):
    cert, key = cert_files
    env = {"OPENAI_PROXY_TLS_CERT_PATH": cert, "OPENAI_PROXY_TLS_KEY_PATH": key}
    with trio.fail_after(15):
        async with running_proxy(fake.url, env=env) as daemon:
            assert daemon.url.startswith("wss://127.0.0.1:")
            async with open_websocket_url(daemon.url, ssl_context=client_context(ca)) as socket:
                assert json.loads(await socket.get_message())["type"] == "Welcome"
            daemon.signal(signal.SIGTERM)
            assert await daemon.wait() == 0


def test_cert_without_key_is_a_config_error(cert_files):
    cert, _ = cert_files
    with pytest.raises(ConfigError, match="TLS"):
        load_config([], environ={"OPENAI_API_KEY": "sk-x", "OPENAI_PROXY_TLS_CERT_PATH": cert}, cwd="/nonexistent")
