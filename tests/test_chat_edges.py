"""`python -m proxy.chat` rough edges (issue 13): an untrusted certificate is
named at once, an upstream failure is reported once by its real cause, a bad
--settings file is one line, and `make chat` takes an apostrophe."""

from __future__ import annotations

import ssl
import sys
import time
from pathlib import Path

import trio
import trustme

from proxy.testing import DEFAULT_REPLY

from .test_chat import run_chat

ROOT = Path(__file__).resolve().parent.parent


async def test_untrusted_wss_certificate_fails_at_once_naming_the_tls_error(nursery):
    ca = trustme.CA()  # the chat's default trust store knows nothing of this CA
    server_context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    ca.issue_cert("127.0.0.1").configure_cert(server_context)

    async def handshake_only(stream: trio.SSLStream) -> None:
        try:
            await stream.do_handshake()
        except trio.BrokenResourceError:
            pass

    listeners = await trio.open_tcp_listeners(0, host="127.0.0.1")
    port = listeners[0].socket.getsockname()[1]
    nursery.start_soon(trio.serve_listeners, handshake_only, [trio.SSLListener(each, server_context) for each in listeners])
    started = time.monotonic()
    with trio.fail_after(30):
        result = await trio.run_process(
            [sys.executable, "-m", "proxy.chat", "--timeout", "25", "--url", f"wss://127.0.0.1:{port}/openai",
             "--text", "Hello"],
            capture_stdout=True, capture_stderr=True, check=False,
        )
    stderr = result.stderr.decode()
    assert result.returncode == 2
    assert stderr.strip().splitlines() == [
        f"chat: TLS handshake with 127.0.0.1:{port} failed: unable to get local issuer certificate;"
        " give --ca-file for a private CA"
    ]
    # Not the 25 s connect timeout: trio-websocket alone waited for it and printed an empty reason.
    assert time.monotonic() - started < 20


async def test_upstream_failure_is_reported_once_by_its_real_cause(proxy_factory, fake):
    fake.reject_status = 401
    proxy = await proxy_factory()
    result = await run_chat("--url", proxy.url, "--text", "Hello")
    lines = result.stderr.decode().strip().splitlines()
    assert result.returncode == 1
    assert len(lines) == 1 and lines[0].startswith("error: UPSTREAM_UNAUTHORIZED"), lines


async def test_unreachable_upstream_is_one_line(proxy_factory):
    with trio.socket.socket() as sock:
        await sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]  # bound, never listening: connection refused
        proxy = await proxy_factory(upstream_url=f"ws://127.0.0.1:{port}/v1/realtime")
        result = await run_chat("--url", proxy.url, "--text", "Hello")
    lines = result.stderr.decode().strip().splitlines()
    assert result.returncode == 1
    assert len(lines) == 1 and lines[0].startswith("error: UPSTREAM_UNAVAILABLE"), lines


async def test_missing_or_invalid_settings_file_is_one_line(tmp_path):
    bad = tmp_path / "bad.json"
    bad.write_text("{not json")
    not_settings = tmp_path / "list.json"
    not_settings.write_text("[1, 2]")
    for path, says in ((tmp_path / "none.json", "No such file"), (bad, "is not valid JSON"),
                       (not_settings, '"type": "Settings"')):
        result = await run_chat("--settings", str(path), "--text", "Hello")
        lines = result.stderr.decode().strip().splitlines()
        assert result.returncode == 2
        assert len(lines) == 1 and lines[0].startswith(f"chat: --settings {path}") and says in lines[0], lines


async def test_make_chat_takes_an_apostrophe(tmp_path, proxy, fake):
    stamp = tmp_path / "stamp"
    stamp.touch()  # newer than pyproject.toml: make installs nothing
    with trio.fail_after(60):
        result = await trio.run_process(
            ["make", "--no-print-directory", "-s", "chat", "TEXT=What's the \"weather\"?", f"URL={proxy.url}",
             f"VENV={Path(sys.executable).parent.parent}", f"RUNTIME_STAMP={stamp}", "ARGS=--timeout 10"],
            cwd=ROOT, capture_stdout=True, capture_stderr=True, check=False,
        )
    assert result.returncode == 0, result.stderr.decode()
    assert result.stdout.decode().splitlines() == ["user: What's the \"weather\"?", f"assistant: {DEFAULT_REPLY}"]
