"""The admin listener: /healthz, /readyz, /metrics, and counts that move with a session."""

from __future__ import annotations

import signal

import pytest
import trio
from prometheus_client.parser import text_string_to_metric_families
from trio_websocket import ConnectionRejected, open_websocket_url

from proxy.admin import AdminServer
from proxy.testing import open_agent_client

from .daemon import running_proxy


async def http(port: int, path: str, method: str = "GET", raw: bytes | None = None) -> tuple[int, dict, bytes]:
    """One HTTP/1.1 request to 127.0.0.1:port; (status, headers, body)."""
    with trio.fail_after(5):
        stream = await trio.open_tcp_stream("127.0.0.1", port)
        async with stream:
            await stream.send_all(raw or f"{method} {path} HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\n".encode())
            data = b""
            while chunk := await stream.receive_some(65536):
                data += chunk
    head, _, body = data.partition(b"\r\n\r\n")
    status_line, *header_lines = head.decode().split("\r\n")
    headers = {k.lower(): v.strip() for k, v in (line.split(":", 1) for line in header_lines)}
    assert int(headers["content-length"]) == len(body) or method == "HEAD"
    return int(status_line.split()[1]), headers, body


async def scrape(port: int) -> dict[tuple[str, tuple], float]:
    """Every sample of /metrics as {(name, sorted labels): value}."""
    status, headers, body = await http(port, "/metrics")
    assert status == 200
    assert headers["content-type"].startswith("text/plain; version=0.0.4")
    samples = {}
    for family in text_string_to_metric_families(body.decode()):
        for sample in family.samples:
            samples[(sample.name, tuple(sorted(sample.labels.items())))] = sample.value
    return samples


def value(samples: dict, name: str, **labels: str) -> float:
    return samples.get((name, tuple(sorted(labels.items()))), 0.0)


@pytest.fixture
async def admin(proxy, nursery):
    return await nursery.start(AdminServer(proxy.server).serve)


async def test_health_and_readiness(proxy, admin):
    assert (await http(admin.port, "/healthz"))[:1] == (200,)
    assert (await http(admin.port, "/readyz"))[:1] == (200,)
    # P2.6: once the drain starts, the proxy is alive but not ready.
    with trio.fail_after(5):
        await proxy.server.shutdown()
    assert (await http(admin.port, "/healthz"))[0] == 200
    status, _, body = await http(admin.port, "/readyz")
    assert status == 503 and b"not accepting" in body


async def test_unknown_path_method_and_garbage(admin):
    assert (await http(admin.port, "/nope"))[0] == 404
    assert (await http(admin.port, "/metrics", method="POST"))[0] == 405
    status, headers, body = await http(admin.port, "/healthz", method="HEAD")
    assert status == 200 and body == b"" and int(headers["content-length"]) == 3
    assert (await http(admin.port, "", raw=b"nonsense\r\n\r\n"))[0] == 400


async def test_metrics_move_with_a_session(proxy, fake, admin):
    """Active connections, outcomes, frames/bytes per direction, connect and translation time, errors."""
    before = await scrape(admin.port)
    assert value(before, "openai_proxy_active_connections") == 0
    assert value(before, "openai_proxy_accepting") == 1
    assert value(before, "openai_proxy_upstream_connect_seconds_count") == 0
    with trio.fail_after(10):
        async with proxy.connect() as client:
            await client.settings()
            await client.next("SettingsApplied")
            await client.send({"type": "InjectUserMessage", "content": "hello"})
            await client.next("AgentAudioDone")
            await client.send({"type": "NoSuchMessage"})
            await client.next("Error")
            during = await scrape(admin.port)
        while proxy.server.connections:
            await trio.sleep(0.01)
    after = await scrape(admin.port)

    assert value(during, "openai_proxy_active_connections") == 1
    assert value(after, "openai_proxy_active_connections") == 0
    assert value(after, "openai_proxy_connections_total", outcome="closed", code="1000") == 1
    # Frames and sizes moved in every direction; audio alone is 2880 bytes to the client.
    for direction in ("client_to_proxy", "proxy_to_client", "upstream_to_proxy", "proxy_to_upstream"):
        assert value(after, "openai_proxy_frames_total", direction=direction) > 0, direction
        assert value(after, "openai_proxy_payload_bytes_total", direction=direction) > 0, direction
    assert value(after, "openai_proxy_frames_total", direction="client_to_proxy") == 3
    assert value(after, "openai_proxy_payload_bytes_total", direction="proxy_to_client") > 2880
    assert value(after, "openai_proxy_upstream_connect_seconds_count") == 1
    assert value(after, "openai_proxy_upstream_connect_seconds_bucket", le="+Inf") == 1
    assert value(after, "openai_proxy_errors_total", code="UNKNOWN_MESSAGE_TYPE") == 1
    translated = sum(
        v for (name, _), v in after.items() if name == "openai_proxy_translation_seconds_count"
    )
    assert translated >= 1
    # The process collector is there too.
    assert value(after, "openai_proxy_process_resident_memory_bytes") > 0


async def test_rejections_are_counted_by_status(proxy_factory, nursery, fake):
    proxy = await proxy_factory(auth_tokens=("secret-token",))
    admin = await nursery.start(AdminServer(proxy.server).serve)
    with trio.fail_after(5):
        for _ in range(2):
            with pytest.raises(ConnectionRejected):
                async with open_websocket_url(proxy.url):
                    pass
    samples = await scrape(admin.port)
    assert value(samples, "openai_proxy_connections_total", outcome="rejected", code="401") == 2
    assert fake.handshakes == 0


async def test_running_daemon_serves_admin_endpoints(fake):
    """The process answers /healthz and /metrics, with counts that move when a session runs."""
    with trio.fail_after(20):
        env = {"OPENAI_PROXY_ADMIN_PORT": "0"}
        async with running_proxy(fake.url, env=env) as daemon:
            await daemon.wait_for_line("admin listening on")
            assert daemon.admin_port
            assert (await http(daemon.admin_port, "/healthz"))[0] == 200
            before = await scrape(daemon.admin_port)
            async with open_agent_client(daemon.url) as client:
                await client.settings()
                await client.next("SettingsApplied")
                await client.send({"type": "InjectUserMessage", "content": "hi"})
                await client.next("AgentAudioDone")
                during = await scrape(daemon.admin_port)
            after = await scrape(daemon.admin_port)
            daemon.signal(signal.SIGTERM)
            assert await daemon.wait() == 0
    assert value(before, "openai_proxy_frames_total", direction="proxy_to_client") == 0
    assert value(during, "openai_proxy_active_connections") == 1
    assert value(after, "openai_proxy_frames_total", direction="proxy_to_client") > 0


async def test_taken_port_is_one_error_and_exit_1(fake):
    """A port already in use: one error record naming it and status 1 (Restart=on-failure retries), no traceback."""
    with trio.socket.socket() as taken:
        await taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        for env in ({"OPENAI_PROXY_ADMIN_PORT": str(port)}, {"OPENAI_PROXY_PORT": str(port)}):
            with trio.fail_after(15):
                async with running_proxy(fake.url, env=env, wait_ready=False) as daemon:
                    assert await daemon.wait() == 1
            errors = [r for r in daemon.records() if r["level"] == "error"]
            assert len(errors) == 1 and f"cannot listen on 127.0.0.1:{port}" in errors[0]["message"]
            assert "Traceback" not in daemon.stderr


async def test_not_ready_at_max_connections(proxy_factory, nursery, fake):
    """A full proxy would answer new clients 503 (P8 MAX_CONNECTIONS), so it is not ready."""
    proxy = await proxy_factory(max_connections=1)
    admin = await nursery.start(AdminServer(proxy.server).serve)
    with trio.fail_after(10):
        assert (await http(admin.port, "/readyz"))[0] == 200
        async with proxy.connect() as client:
            await client.next("Welcome")
            status, _, body = await http(admin.port, "/readyz")
            assert status == 503 and b"max connections" in body
        while proxy.server.connections:
            await trio.sleep(0.01)
        assert (await http(admin.port, "/readyz"))[0] == 200
