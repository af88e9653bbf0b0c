"""`--workers N` (OPENAI_PROXY_WORKERS): N processes sharing one listening port.

One Python process carries one core's worth of sessions. With N workers,
each process binds its own listening socket to the same address with
SO_REUSEPORT, so the kernel spreads new connections across them; there is no
accept lock and nothing is shared after the fork. A session lives and dies in
the worker that accepted it.

The parent (proxy/supervisor.py) forks, forwards SIGTERM/SIGINT as SIGTERM
(each worker then drains as in P2.6), speaks systemd's notify protocol for
the whole set, and starts a worker again if it dies. Workers run in their own
process group: a terminal's Ctrl-C reaches the parent, which forwards it
once, instead of every worker getting it twice.

The admin listener (health and metrics) runs in the first worker only, since
N workers cannot share one admin port usefully; each worker publishes its
figures to a directory the parent made (proxy/worker_metrics.py), and the
admin listener adds them up, so /metrics and /readyz speak for every worker.
"""

from __future__ import annotations

import ctypes
import logging
import os
import shutil
import signal
import socket
import tempfile
from collections.abc import Callable
from typing import TYPE_CHECKING

import attrs
import trio

from . import worker_metrics
from .config import Config
from .listeners import LISTEN_BACKLOG, open_shared_listeners  # noqa: F401 (re-exported)
from .notify import Notifier
from .supervisor import Supervisor, beat_interval

if TYPE_CHECKING:
    from .server import ProxyServer

log = logging.getLogger("proxy")

PR_SET_PDEATHSIG = 1  # <linux/prctl.h>


def reserve_port(host: str) -> tuple[socket.socket, int]:
    """Resolve port 0 once for all workers: a bound (not listening) SO_REUSEPORT socket.

    The parent keeps it open so the port stays ours; it accepts nothing.
    """
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    probe = socket.socket(family, socket.SOCK_STREAM)
    probe.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    probe.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEPORT, 1)
    probe.bind((host, 0))
    return probe, probe.getsockname()[1]


def _die_with(parent: int) -> None:
    """Linux: a worker gets SIGTERM (and drains) if the parent dies, even by SIGKILL."""
    try:
        libc = ctypes.CDLL(None, use_errno=True)
        libc.prctl(PR_SET_PDEATHSIG, signal.SIGTERM)
    except (OSError, AttributeError):
        return
    if os.getppid() != parent:  # the parent died before prctl took effect
        os.kill(os.getpid(), signal.SIGTERM)


class WorkerTag(logging.Filter):
    """Stamps every record of a worker process with its slot number (the `worker` field)."""

    def __init__(self, index: int) -> None:
        super().__init__()
        self.index = index

    def filter(self, record: logging.LogRecord) -> bool:
        if getattr(record, "worker", None) is None:
            record.worker = self.index
        return True


@attrs.define
class WorkerLink:
    """A worker's side of the supervisor: readiness and heartbeats up its pipe, metrics into the shared directory.

    The beats come from a Trio task, so they stop when the worker's event
    loop stops running tasks, which is what the parent's watchdog watches.
    """

    index: int
    beat_fd: int
    beat_s: float
    shared_dir: str

    async def run(self, server: ProxyServer) -> None:
        """Say READY, then beat and publish this worker's figures until cancelled."""
        from .supervisor import BEAT, READY

        self._send(READY)
        while True:
            worker_metrics.publish(server, self.shared_dir, self.index)
            self._send(BEAT)
            await trio.sleep(self.beat_s)

    def _send(self, byte: bytes) -> None:
        try:
            os.write(self.beat_fd, byte)
        except (BlockingIOError, BrokenPipeError):
            pass  # a parent that is not reading will not ping systemd either

    def view(self, server: ProxyServer) -> worker_metrics.AllWorkers:
        """What the admin listener reports: this worker live, the others from their last publication."""
        return worker_metrics.AllWorkers(server, self.shared_dir, self.index)


def run_workers(config: Config, serve_one: Callable[[Config, WorkerLink], int]) -> int:
    """Fork `config.workers` processes that each run `serve_one`; returns the exit status."""
    count = config.workers
    probe = None
    if config.port == 0:
        probe, port = reserve_port(config.host)
        config = attrs.evolve(config, port=port)
    notifier = Notifier()  # the parent is systemd's main process: WATCHDOG_PID names it
    beat_s = beat_interval(notifier.watchdog_interval_s)
    shared_dir = tempfile.mkdtemp(prefix="openai-proxy-workers-")
    parent = os.getpid()

    def start(index: int, beat_fd: int) -> int:
        os.setpgid(0, 0)
        _die_with(parent)
        if probe is not None:
            probe.close()
        # The parent speaks to systemd for the set; a worker must not (its pid is not WATCHDOG_PID).
        for name in ("NOTIFY_SOCKET", "WATCHDOG_USEC", "WATCHDOG_PID"):
            os.environ.pop(name, None)
        for handler in logging.getLogger().handlers:
            handler.addFilter(WorkerTag(index))
        worker_config = config if index == 0 else attrs.evolve(config, admin_port=None)
        return serve_one(worker_config, WorkerLink(index, beat_fd, beat_s, shared_dir))

    scheme = "wss" if config.tls_cert_path else "ws"
    supervisor = Supervisor(
        count, start, notifier, status_text=f"{count} workers listening on {scheme}://{config.host}:{config.port}{config.path}"
    )
    try:
        return supervisor.run()
    finally:
        shutil.rmtree(shared_dir, ignore_errors=True)
        if probe is not None:
            probe.close()
