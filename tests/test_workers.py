"""`--workers N` (issue 6, P8 OPENAI_PROXY_WORKERS): processes sharing one port via SO_REUSEPORT."""

from __future__ import annotations

import os
import re
import signal
from pathlib import Path

import trio

from proxy.config import load_config
from proxy.testing import FakeRealtime, open_agent_client
from proxy.workers import open_shared_listeners

from .daemon import running_proxy
from .oracles import validate_deepgram_server_message

LISTENING_PORT = re.compile(r"listening on wss?://[^:]+:(\d+)/")


def worker_pids(parent: int) -> list[int]:
    pids = []
    for task in Path(f"/proc/{parent}/task").iterdir():
        pids += [int(pid) for pid in (task / "children").read_text().split()]
    return pids


def socket_count(pid: int) -> int:
    count = 0
    for fd in Path(f"/proc/{pid}/fd").iterdir():
        try:
            count += os.readlink(fd).startswith("socket:")
        except OSError:
            pass
    return count


def test_zero_workers_means_one_per_core() -> None:
    config = load_config(["--workers", "0"], environ={"OPENAI_API_KEY": "sk-x"})
    assert config.workers == (os.cpu_count() or 1)
    assert load_config([], environ={"OPENAI_API_KEY": "sk-x"}).workers == 1


async def test_shared_listeners_bind_the_same_port_twice() -> None:
    with trio.fail_after(5):
        first = await open_shared_listeners("127.0.0.1", 0)
        port = first[0].socket.getsockname()[1]
        second = await open_shared_listeners("127.0.0.1", port)  # without SO_REUSEPORT: EADDRINUSE
        try:
            assert second[0].socket.getsockname()[1] == port
        finally:
            for listener in first + second:
                await listener.aclose()


async def test_two_workers_share_the_port_and_both_serve(fake: FakeRealtime) -> None:
    sessions = 16  # the kernel hashes each connection: all 16 on one worker has odds of 1 in 32768
    with trio.fail_after(30):
        async with running_proxy(fake.url, "--workers", "2") as daemon:
            while len([line for line in daemon.lines if "listening on" in line]) < 2:
                await daemon.wait_for_line("listening on")
                await trio.sleep(0.05)
            ports = {LISTENING_PORT.search(line)[1] for line in daemon.lines if "listening on" in line}
            assert len(ports) == 1, daemon.stderr  # both workers on the one port
            workers = worker_pids(daemon.process.pid)
            assert len(workers) == 2
            idle = {pid: socket_count(pid) for pid in workers}
            async with trio.open_nursery() as nursery:
                ready = trio.Semaphore(0)
                release = trio.Event()

                async def session() -> None:
                    async with open_agent_client(daemon.url, validate=validate_deepgram_server_message) as client:
                        await client.settings()
                        await client.next("SettingsApplied")  # the upstream is connected too
                        assert not client.validation_errors
                        ready.release()
                        await release.wait()

                for _ in range(sessions):
                    nursery.start_soon(session)
                for _ in range(sessions):
                    await ready.acquire()
                grown = {pid: socket_count(pid) - idle[pid] for pid in workers}
                release.set()
            # Each session is one client socket and one upstream socket in the worker that took it.
            assert sum(grown.values()) == 2 * sessions, grown
            assert all(count > 0 for count in grown.values()), grown
            daemon.signal(signal.SIGTERM)
            assert await daemon.wait() == 0
            assert all(not Path(f"/proc/{pid}").exists() or "zombie" in Path(f"/proc/{pid}/status").read_text()
                       for pid in workers)
