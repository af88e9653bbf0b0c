"""Run `python -m proxy` as a real subprocess, for tests of the process edges:
signals, exit status, systemd notification, stderr logs.

    async with running_proxy(nursery, env={...}) as daemon:
        url = daemon.url
        ...
        daemon.signal(signal.SIGTERM)
        assert await daemon.wait() == 0
"""

from __future__ import annotations

import json
import os
import re
import signal as signals
import subprocess
import sys
import tempfile
from collections.abc import AsyncIterator, Mapping
from contextlib import asynccontextmanager

import attrs
import trio

from .conftest import TEST_KEY

LISTENING = re.compile(r"listening on (wss?)://[^:]+:(\d+)(/[^\s\"]*)")
ADMIN_LISTENING = re.compile(r"admin listening on http://[^:]+:(\d+)")


@attrs.define
class Daemon:
    process: trio.Process
    lines: list[str] = attrs.Factory(list)
    url: str | None = None
    admin_port: int | None = None
    _changed: trio.Event = attrs.Factory(trio.Event)
    _eof: trio.Event = attrs.Factory(trio.Event)

    def signal(self, signum: int = signals.SIGTERM) -> None:
        self.process.send_signal(signum)

    async def wait(self) -> int:
        """The exit status, once every line of stderr has been read."""
        code = await self.process.wait()
        await self._eof.wait()
        return code

    @property
    def stderr(self) -> str:
        return "\n".join(self.lines)

    def records(self) -> list[dict]:
        """The JSON log records printed so far (non-JSON lines are skipped)."""
        out = []
        for line in self.lines:
            try:
                out.append(json.loads(line))
            except ValueError:
                pass
        return out

    async def wait_for_line(self, needle: str) -> str:
        """The first stderr line containing `needle`; waits for it."""
        seen = 0
        while True:
            for line in self.lines[seen:]:
                if needle in line:
                    return line
            seen = len(self.lines)
            if self.process.returncode is not None and seen == len(self.lines):
                raise AssertionError(f"proxy exited before logging {needle!r}:\n{self.stderr}")
            await self._changed.wait()

    async def _read(self, stream: trio.abc.ReceiveStream) -> None:
        buffer = b""
        async for chunk in stream:
            buffer += chunk
            *complete, buffer = buffer.split(b"\n")
            for raw in complete:
                line = raw.decode(errors="replace")
                self.lines.append(line)
                if self.url is None and (match := LISTENING.search(line)):
                    self.url = f"{match[1]}://127.0.0.1:{match[2]}{match[3]}"
                if self.admin_port is None and (match := ADMIN_LISTENING.search(line)):
                    self.admin_port = int(match[1])
            self._notify()
        if buffer:
            self.lines.append(buffer.decode(errors="replace"))
        await self.process.wait()
        self._eof.set()
        self._notify()

    def _notify(self) -> None:
        event, self._changed = self._changed, trio.Event()
        event.set()


@asynccontextmanager
async def running_proxy(
    upstream_url: str, *args: str, env: Mapping[str, str] | None = None, wait_ready: bool = True
) -> AsyncIterator[Daemon]:
    """Start the proxy on an ephemeral port; kill it on exit if the test did not stop it."""
    environment = {
        key: value for key, value in os.environ.items() if not key.startswith(("OPENAI_", "NOTIFY_", "WATCHDOG_"))
    }
    environment.update(
        {
            "OPENAI_API_KEY": TEST_KEY,
            "OPENAI_REALTIME_URL": upstream_url,
            "OPENAI_PROXY_PORT": "0",
            "PYTHONUNBUFFERED": "1",
            **(env or {}),
        }
    )
    workdir = tempfile.TemporaryDirectory(prefix="proxy-test-")
    process = await trio.lowlevel.open_process(
        [sys.executable, "-m", "proxy", *args],
        env=environment,
        cwd=workdir.name,  # no stray .env from the work tree
        stdin=subprocess.DEVNULL,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
    )
    daemon = Daemon(process)
    try:
        async with trio.open_nursery() as nursery:
            nursery.start_soon(daemon._read, process.stderr)
            if wait_ready:
                await daemon.wait_for_line("listening on")
            yield daemon
            nursery.cancel_scope.cancel()
    finally:
        if process.returncode is None:
            process.kill()
            with trio.CancelScope(shield=True):
                await process.wait()
        workdir.cleanup()
