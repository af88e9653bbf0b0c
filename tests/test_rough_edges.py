"""Issue 13 rough edges of the daemon: readiness figures agree at the
connection limit, nothing says "listening" before every listener is bound,
and the OTLP export at shutdown is bounded."""

from __future__ import annotations

import signal
import socket

import trio

from proxy.admin import AdminServer

from .daemon import running_proxy
from .test_admin import http, scrape, value


async def test_accepting_gauge_agrees_with_readyz_at_the_connection_limit(proxy_factory, nursery, fake):
    proxy = await proxy_factory(max_connections=1)
    admin = await nursery.start(AdminServer(proxy.server).serve)
    assert value(await scrape(admin.port), "openai_proxy_accepting") == 1
    with trio.fail_after(10):
        async with proxy.session(fake):
            status, _, body = await http(admin.port, "/readyz")
            assert (status, body) == (503, b"at max connections\n")
            assert value(await scrape(admin.port), "openai_proxy_accepting") == 0
        while proxy.server.connections:
            await trio.sleep(0.01)
    assert (await http(admin.port, "/readyz"))[0] == 200
    assert value(await scrape(admin.port), "openai_proxy_accepting") == 1


async def test_a_busy_admin_port_fails_before_listening_is_logged(fake):
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        env = {"OPENAI_PROXY_ADMIN_PORT": str(taken.getsockname()[1])}
        with trio.fail_after(20):
            async with running_proxy(fake.url, env=env, wait_ready=False) as daemon:
                assert await daemon.wait() == 1
    assert any("cannot listen on" in line and "(admin)" in line for line in daemon.lines), daemon.stderr
    assert not any("listening on ws://" in line for line in daemon.lines), daemon.stderr


async def test_workers_say_started_only_once_all_are_bound(fake):
    """A busy admin port in the first worker: no "started 2 workers", exit 1 (not a restart loop)."""
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        env = {"OPENAI_PROXY_ADMIN_PORT": str(taken.getsockname()[1])}
        with trio.fail_after(30):
            async with running_proxy(fake.url, "--workers", "2", env=env, wait_ready=False) as daemon:
                assert await daemon.wait() == 1
    assert not any("started 2 workers" in line for line in daemon.lines), daemon.stderr
    assert any("before it was ready" in line for line in daemon.lines), daemon.stderr


async def test_otlp_export_at_shutdown_is_bounded_with_an_unreachable_collector(fake):
    with socket.socket() as silent:
        silent.bind(("127.0.0.1", 0))
        silent.listen()  # connects, never answers: each export waits out its timeout
        env = {"OTEL_EXPORTER_OTLP_ENDPOINT": f"http://127.0.0.1:{silent.getsockname()[1]}"}
        with trio.fail_after(30):
            async with running_proxy(fake.url, env=env) as daemon:
                daemon.signal(signal.SIGTERM)
                await daemon.wait_for_line('"stopped"')
                # Unbounded, the exporter's retries kept the process about 14 s longer.
                with trio.fail_after(8):
                    assert await daemon.wait() == 0
