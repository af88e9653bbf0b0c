"""`--workers N` under systemd (issue 13): the parent owns the notify protocol,
restarts a worker that dies, and /metrics covers every worker.

The notify tests play the service manager: they bind the datagram socket of
`$NOTIFY_SOCKET`, set `WATCHDOG_USEC`, and set `WATCHDOG_PID` to the parent
(a shell `exec`s the proxy, so `$$` is its pid), as systemd does for the main
process. SO_PASSCRED tells them which process sent each datagram.
"""

from __future__ import annotations

import os
import signal
import socket
import struct
import subprocess
import sys
import tempfile
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

import trio

from proxy.supervisor import beat_interval
from proxy.testing import FakeRealtime, open_agent_client

from .conftest import TEST_KEY
from .daemon import Daemon
from .test_admin import http, scrape, value
from .test_workers import worker_pids

WATCHDOG_USEC = 400_000  # pings every 0.2 s
CREDENTIALS = struct.Struct("3i")  # struct ucred: pid, uid, gid


@asynccontextmanager
async def supervised(fake: FakeRealtime, env: dict[str, str], *args: str) -> AsyncIterator[Daemon]:
    """The proxy as systemd's main process: WATCHDOG_PID is its own pid."""
    environment = {k: v for k, v in os.environ.items() if not k.startswith(("OPENAI_", "NOTIFY_", "WATCHDOG_"))}
    environment.update({"OPENAI_API_KEY": TEST_KEY, "OPENAI_REALTIME_URL": fake.url, "OPENAI_PROXY_PORT": "0",
                        "PYTHONUNBUFFERED": "1", **env})
    with tempfile.TemporaryDirectory(prefix="proxy-test-") as workdir:
        process = await trio.lowlevel.open_process(
            ["sh", "-c", 'WATCHDOG_PID=$$ exec "$0" -m proxy "$@"', sys.executable, *args],
            env=environment, cwd=workdir, stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL,
            stderr=subprocess.PIPE,
        )
        daemon = Daemon(process)
        try:
            async with trio.open_nursery() as nursery:
                nursery.start_soon(daemon._read, process.stderr)
                yield daemon
                nursery.cancel_scope.cancel()
        finally:
            if process.returncode is None:
                process.kill()
                with trio.CancelScope(shield=True):
                    await process.wait()


class Manager:
    """The service manager's end of NOTIFY_SOCKET."""

    def __init__(self, path: str) -> None:
        self.path = path
        self.sock = trio.socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
        self.sock.setsockopt(socket.SOL_SOCKET, socket.SO_PASSCRED, 1)

    async def __aenter__(self) -> Manager:
        await self.sock.bind(self.path)
        return self

    async def __aexit__(self, *_: object) -> None:
        self.sock.close()

    async def receive(self) -> tuple[int, dict[str, str]]:
        """(sender pid, assignments) of the next datagram."""
        data, ancillary, _, _ = await self.sock.recvmsg(4096, socket.CMSG_SPACE(CREDENTIALS.size))
        pid = next(
            CREDENTIALS.unpack(blob[: CREDENTIALS.size])[0]
            for level, kind, blob in ancillary
            if level == socket.SOL_SOCKET and kind == socket.SCM_CREDENTIALS
        )
        return pid, dict(line.split("=", 1) for line in data.decode().splitlines())

    async def next_with(self, key: str) -> tuple[int, dict[str, str]]:
        while True:
            pid, message = await self.receive()
            if key in message:
                return pid, message


def test_beats_are_four_per_watchdog_ping():
    assert beat_interval(None) == 1.0
    assert beat_interval(15.0) == 1.0  # WatchdogSec=30
    assert beat_interval(0.2) == 0.05


async def test_parent_feeds_the_watchdog_only_while_every_worker_loop_answers(fake, tmp_path):
    async with Manager(str(tmp_path / "notify.sock")) as manager:
        env = {"NOTIFY_SOCKET": manager.path, "WATCHDOG_USEC": str(WATCHDOG_USEC)}
        with trio.fail_after(40):
            async with supervised(fake, env, "--workers", "2") as daemon:
                parent = daemon.process.pid
                sender, ready = await manager.next_with("READY")
                # READY=1 comes from the parent, once both workers listen.
                assert sender == parent and ready["READY"] == "1"
                # Logged before READY=1 was sent (the test may read stderr a moment later).
                await daemon.wait_for_line("started 2 workers")
                assert sum("listening on ws://" in line for line in daemon.lines) == 2, daemon.stderr
                workers = worker_pids(parent)
                assert len(workers) == 2
                # WATCHDOG=1 keeps coming, always from the parent (systemd ignores any other pid).
                for _ in range(5):
                    sender, message = await manager.next_with("WATCHDOG")
                    assert sender == parent and message["WATCHDOG"] == "1"

                # One worker's event loop stops (SIGSTOP): the pings stop.
                os.kill(workers[1], signal.SIGSTOP)
                try:
                    with trio.move_on_after(3 * WATCHDOG_USEC / 1e6):
                        while True:  # pings already decided before the stop
                            await manager.receive()
                    with trio.move_on_after(1.5) as quiet:
                        sender, message = await manager.next_with("WATCHDOG")
                    assert quiet.cancelled_caught, f"WATCHDOG=1 sent while a worker hangs: {message}"
                finally:
                    os.kill(workers[1], signal.SIGCONT)
                # The loop runs again: so do the pings.
                sender, message = await manager.next_with("WATCHDOG")
                assert sender == parent

                daemon.signal(signal.SIGTERM)
                sender, stopping = await manager.next_with("STOPPING")
                assert sender == parent
                assert await daemon.wait() == 0


async def test_a_worker_that_dies_is_started_again(fake):
    with trio.fail_after(40):
        async with supervised(fake, {}, "--workers", "2") as daemon:
            await daemon.wait_for_line("started 2 workers")
            parent = daemon.process.pid
            before = worker_pids(parent)
            os.kill(before[0], signal.SIGKILL)
            await daemon.wait_for_line("worker exited; starting it again")
            while len([pid for pid in worker_pids(parent) if pid not in before]) < 1:
                await trio.sleep(0.05)
            after = worker_pids(parent)
            assert len(after) == 2 and before[1] in after and before[0] not in after
            while sum("listening on ws://" in line for line in daemon.lines) < 3:
                await trio.sleep(0.05)
            url = next(line for line in daemon.lines if "listening on ws://" in line)
            port = url.split("listening on ws://127.0.0.1:")[1].split("/")[0]
            for _ in range(4):  # whichever worker the kernel picks serves
                async with open_agent_client(f"ws://127.0.0.1:{port}/openai") as client:
                    await client.settings()
                    await client.next("SettingsApplied")
            daemon.signal(signal.SIGTERM)
            assert await daemon.wait() == 0


async def test_metrics_cover_every_worker_and_records_carry_the_worker_id(fake):
    sessions = 16
    with trio.fail_after(40):
        env = {"OPENAI_PROXY_ADMIN_PORT": "0"}
        async with supervised(fake, env, "--workers", "2") as daemon:
            await daemon.wait_for_line("started 2 workers")
            url = next(line for line in daemon.lines if "listening on ws://" in line)
            port = url.split("listening on ws://127.0.0.1:")[1].split("/")[0]
            assert daemon.admin_port
            for _ in range(sessions):
                async with open_agent_client(f"ws://127.0.0.1:{port}/openai") as client:
                    await client.settings()
                    await client.next("SettingsApplied")
            connected = [r for r in daemon.records() if r.get("message") == "client connected"]
            while len(connected) < sessions:
                await trio.sleep(0.05)
                connected = [r for r in daemon.records() if r.get("message") == "client connected"]
            # Each record names its worker; both workers served (all 16 on one: odds 1 in 32768).
            assert {record.get("worker") for record in connected} == {0, 1}
            # The admin listener is in worker 0, and counts worker 1's sessions too.
            while True:
                samples = await scrape(daemon.admin_port)
                if value(samples, "openai_proxy_connections_total", outcome="closed", code="1000") >= sessions:
                    break
                await trio.sleep(0.2)  # worker 1 publishes once per beat
            assert value(samples, "openai_proxy_connections_total", outcome="closed", code="1000") == sessions
            assert value(samples, "openai_proxy_upstream_connect_seconds_count") == sessions
            assert value(samples, "openai_proxy_accepting") == 1
            assert (await http(daemon.admin_port, "/readyz"))[0] == 200
            daemon.signal(signal.SIGTERM)
            assert await daemon.wait() == 0
