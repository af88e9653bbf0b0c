"""nginx in front of the proxy (issue 13), with the configuration of README
"Behind nginx": both paths complete a turn through it, the token subprotocol
passes, and X-Forwarded-For reaches the proxy's logs from a trusted proxy.

The configuration is the README's block, changed only where a test must:
plain HTTP on a loopback port instead of 443 with TLS, and the proxy's real
port. nginx runs as the test's own process (`master_process off`) with every
path in a temporary directory. Debian's `nginx-light` is enough.
"""

from __future__ import annotations

import logging
import re
import shutil
import socket
import subprocess
from pathlib import Path

import pytest
import trio

from proxy.clientaddr import client_address
from proxy.testing import DEFAULT_REPLY, open_agent_client

from .oracles import validate_deepgram_server_message

ROOT = Path(__file__).resolve().parent.parent
NGINX = shutil.which("nginx") or next((p for p in ("/usr/sbin/nginx",) if Path(p).exists()), None)
TOKEN = "nginx-test-token-0123456789"


def documented_config() -> str:
    readme = (ROOT / "README.md").read_text()
    section = readme.split("## Behind nginx", 1)[1].split("\n## ", 1)[0]
    return re.search(r"```nginx\n(.*?)```", section, re.S)[1]


def test_documented_config_serves_both_paths_and_forwards():
    config = documented_config()
    assert "location ~ ^/(openai|v1/agent/converse)$" in config
    assert "proxy_set_header X-Forwarded-For $proxy_add_x_forwarded_for;" in config
    assert "proxy_set_header Sec-WebSocket-Protocol $http_sec_websocket_protocol;" in config


def test_client_address_believes_only_trusted_peers():
    xff = [(b"X-Forwarded-For", b"203.0.113.7, 10.0.0.5")]
    assert client_address("127.0.0.1", xff, ()) == "127.0.0.1"  # nobody trusted: the peer
    assert client_address("198.51.100.1", xff, ("127.0.0.1",)) == "198.51.100.1"  # an untrusted peer's header is ignored
    assert client_address("127.0.0.1", xff, ("127.0.0.1/32",)) == "10.0.0.5"  # the nearest untrusted hop
    assert client_address("127.0.0.1", xff, ("127.0.0.1/32", "10.0.0.0/8")) == "203.0.113.7"
    assert client_address("127.0.0.1", [], ("127.0.0.1/32",)) == "127.0.0.1"
    assert client_address("::ffff:127.0.0.1", xff, ("127.0.0.0/8",)) == "10.0.0.5"
    assert client_address("127.0.0.1", [(b"x-forwarded-for", b"junk")], ("127.0.0.1/32",)) == "127.0.0.1"


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def test_config_for(proxy_port: int, listen_port: int, prefix: Path) -> Path:
    """The README's server block for this test, inside a minimal nginx.conf."""
    site = documented_config()
    site = site.replace("server 127.0.0.1:8080;", f"server 127.0.0.1:{proxy_port};")
    site = site.replace("listen 443 ssl;", f"listen 127.0.0.1:{listen_port};")
    site = "\n".join(line for line in site.splitlines() if not line.strip().startswith("ssl_certificate"))
    for name in ("client_body", "proxy", "fastcgi", "uwsgi", "scgi"):
        (prefix / name).mkdir(exist_ok=True)
    conf = prefix / "nginx.conf"
    conf.write_text(
        f"""
master_process off;
daemon off;
pid {prefix}/nginx.pid;
error_log {prefix}/error.log info;
events {{ worker_connections 64; }}
http {{
    access_log {prefix}/access.log;
    client_body_temp_path {prefix}/client_body;
    proxy_temp_path {prefix}/proxy;
    fastcgi_temp_path {prefix}/fastcgi;
    uwsgi_temp_path {prefix}/uwsgi;
    scgi_temp_path {prefix}/scgi;
{site}
}}
"""
    )
    return conf


test_config_for.__test__ = False  # a helper, not a test


@pytest.fixture
async def nginx_in_front(proxy_factory, tmp_path, nursery):
    if NGINX is None:
        pytest.skip("nginx is not installed (Debian package: nginx-light; .ci/run installs it)")
    proxy = await proxy_factory(auth_tokens=(TOKEN,), trusted_proxies=("127.0.0.1/32",))
    listen_port = free_port()
    conf = test_config_for(proxy.server.port, listen_port, tmp_path)
    # -e: the error log before the configuration is read (the default is under /var/log).
    command = [NGINX, "-e", str(tmp_path / "error.log"), "-c", str(conf), "-p", str(tmp_path)]
    check = subprocess.run([*command, "-t"], capture_output=True, text=True, timeout=30)
    assert check.returncode == 0, check.stderr
    process = await trio.lowlevel.open_process(
        command, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL
    )
    try:
        with trio.fail_after(10):
            while True:  # up once it accepts
                try:
                    stream = await trio.open_tcp_stream("127.0.0.1", listen_port)
                    await stream.aclose()
                    break
                except OSError:
                    assert process.returncode is None, (tmp_path / "error.log").read_text()
                    await trio.sleep(0.05)
        yield f"ws://127.0.0.1:{listen_port}"
    finally:
        process.terminate()
        with trio.CancelScope(shield=True):
            await process.wait()


@pytest.mark.parametrize("path", ["/openai", "/v1/agent/converse"])
async def test_a_turn_through_nginx(nginx_in_front, fake, caplog, path):
    caplog.set_level(logging.INFO, logger="proxy")
    with trio.fail_after(20):
        async with open_agent_client(
            nginx_in_front + path,
            subprotocols=["token", TOKEN],
            extra_headers=[(b"x-forwarded-for", b"203.0.113.7")],
            validate=validate_deepgram_server_message,
        ) as client:
            await client.next("Welcome")
            await client.settings()
            await client.next("SettingsApplied")
            await client.send({"type": "InjectUserMessage", "content": "Hello through nginx"})
            reply = await client.next("ConversationText")
            while reply["role"] != "assistant":
                reply = await client.next("ConversationText")
            assert reply["content"] == DEFAULT_REPLY
            await client.next("AgentAudioDone")
            assert client.audio, "no agent audio came through nginx"
            assert not client.validation_errors
    connected = [r for r in caplog.records if r.getMessage() == "client connected"]
    # nginx appended its peer (127.0.0.1, trusted) to what the client sent: the client is the claimed address.
    assert [r.client_address for r in connected] == ["203.0.113.7"]


async def test_nginx_passes_a_wrong_token_to_a_401(nginx_in_front, fake):
    from trio_websocket import ConnectionRejected

    with trio.fail_after(10), pytest.raises(ConnectionRejected) as rejected:
        async with open_agent_client(nginx_in_front + "/openai", subprotocols=["token", "wrong"]):
            pass
    assert rejected.value.status_code == 401
    assert fake.handshakes == 0
