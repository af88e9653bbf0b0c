"""`--workers N` (OPENAI_PROXY_WORKERS): N processes sharing one listening port.

One Python process carries one core's worth of sessions. With N workers,
each process binds its own listening socket to the same address with
SO_REUSEPORT, so the kernel spreads new connections across them; there is no
accept lock and nothing is shared after the fork. A session lives and dies in
the worker that accepted it.

The parent only forks, forwards SIGTERM/SIGINT as SIGTERM (each worker then
drains as in P2.6), and waits. If a worker exits with an error, the parent
stops the others and exits with that status, so the supervisor restarts the
whole set. Workers run in their own process group: a terminal's Ctrl-C reaches
the parent, which forwards it once, instead of every worker getting it twice.

The admin listener (health and metrics) runs in the first worker only, since
N workers cannot share one admin port usefully; its figures are that
worker's.
"""

from __future__ import annotations

import ctypes
import logging
import os
import signal
import socket
from collections.abc import Callable

import attrs
import trio

from .config import Config

log = logging.getLogger("proxy")

LISTEN_BACKLOG = 4096
PR_SET_PDEATHSIG = 1  # <linux/prctl.h>


async def open_shared_listeners(host: str, port: int, backlog: int = LISTEN_BACKLOG) -> list[trio.SocketListener]:
    """Listeners on (host, port) with SO_REUSEPORT set, one per resolved address.

    Like trio.open_tcp_listeners, but every worker can bind the same port.
    """
    addresses = await trio.socket.getaddrinfo(host, port, type=socket.SOCK_STREAM, flags=socket.AI_PASSIVE)
    listeners = []
    seen = set()
    try:
        for family, kind, proto, _, address in addresses:
            if (family, address) in seen:
                continue
            seen.add((family, address))
            sock = trio.socket.socket(family, kind, proto)
            try:
                sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
                sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEPORT, 1)
                if family == socket.AF_INET6:
                    sock.setsockopt(socket.IPPROTO_IPV6, socket.IPV6_V6ONLY, 1)
                await sock.bind(address)
                sock.listen(backlog)
            except BaseException:
                sock.close()
                raise
            listeners.append(trio.SocketListener(sock))
    except BaseException:
        for listener in listeners:
            listener.socket.close()
        raise
    return listeners


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


def run_workers(config: Config, serve_one: Callable[[Config], int]) -> int:
    """Fork `config.workers` processes that each run `serve_one`; returns the exit status."""
    count = config.workers
    probe = None
    if config.port == 0:
        probe, port = reserve_port(config.host)
        config = attrs.evolve(config, port=port)
    children: dict[int, int] = {}
    for index in range(count):
        worker_config = config if index == 0 else attrs.evolve(config, admin_port=None)
        parent = os.getpid()
        pid = os.fork()
        if pid == 0:  # the worker
            status = 1
            try:
                os.setpgid(0, 0)
                _die_with(parent)
                if probe is not None:
                    probe.close()
                status = serve_one(worker_config)
            except BaseException:
                log.exception("worker failed", extra={"worker": index})
            finally:
                logging.shutdown()
                os._exit(status)
        children[pid] = index
    log.info(f"started {count} workers on port {config.port}", extra={"workers": count})

    stopping = False

    def forward(signum: int, _frame: object) -> None:
        nonlocal stopping
        stopping = True
        for pid in list(children):
            try:
                os.kill(pid, signal.SIGTERM)
            except ProcessLookupError:
                pass

    previous = {sig: signal.signal(sig, forward) for sig in (signal.SIGTERM, signal.SIGINT)}
    status = 0
    try:
        while children:
            pid, wait_status = os.wait()
            index = children.pop(pid, None)
            if index is None:
                continue
            code = os.waitstatus_to_exitcode(wait_status)
            if code != 0 and not stopping:
                log.error("worker exited; stopping the others", extra={"worker": index, "status": code})
                status = code if code > 0 else 1
                forward(signal.SIGTERM, None)
    finally:
        for sig, handler in previous.items():
            signal.signal(sig, handler)
        if probe is not None:
            probe.close()
    return status
