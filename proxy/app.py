"""Running the server as a process: signals, systemd notification, the admin
listener, and the exit status (P2.6)."""

from __future__ import annotations

import logging
import signal

import trio

from .admin import AdminServer
from .config import Config
from .notify import Notifier
from .server import ProxyServer
from .workers import WorkerLink

log = logging.getLogger("proxy")


async def serve(config: Config, notifier: Notifier | None = None, worker: WorkerLink | None = None) -> int:
    """Serve until SIGTERM or SIGINT, then drain (P2.6); returns the exit status.

    A listener that cannot bind (port taken, address not local) is one error
    record and status 1, so a supervisor can restart it, not a traceback.

    systemd hears `READY=1` once the listener is bound, `STOPPING=1` when the
    drain begins, and `WATCHDOG=1` pings while the loop runs (if asked for).
    A worker of `--workers N` tells its parent instead (`worker`), which
    speaks to systemd for the set (proxy/supervisor.py).
    """
    notifier = Notifier() if notifier is None else notifier
    server = ProxyServer(config)
    with trio.open_signal_receiver(signal.SIGTERM, signal.SIGINT) as signals:
        async with trio.open_nursery() as nursery:
            where = f"{config.host}:{config.port}"
            try:
                await nursery.start(server.serve)
                if config.admin_port is not None:
                    where = f"{config.admin_host}:{config.admin_port} (admin)"
                    view = worker.view if worker is not None else None
                    await nursery.start(AdminServer(server, config.admin_host, config.admin_port, view=view).serve)
            except (OSError, BaseExceptionGroup) as error:
                cause = _os_error_in(error)
                if cause is None:
                    raise
                log.error(f"cannot listen on {where}: {cause.strerror or cause}")
                nursery.cancel_scope.cancel()
                return 1
            scheme = "wss" if config.tls_cert_path else "ws"
            # Only now is every listener bound: a busy admin port fails before this line.
            log.info(f"listening on {scheme}://{config.host}:{server.port}{config.path}")
            if config.playground:
                log.info(f"playground on {'https' if config.tls_cert_path else 'http'}://{config.host}:{server.port}/")
            notifier.notify("READY=1", f"STATUS=listening on {scheme}://{config.host}:{server.port}{config.path}")
            nursery.start_soon(notifier.watchdog)
            if worker is not None:
                nursery.start_soon(worker.run, server)

            async def drain() -> None:
                await server.shutdown()
                # The admin listener, the watchdog and this signal loop end with the proxy.
                nursery.cancel_scope.cancel()

            draining = False
            async for signum in signals:
                name = signal.Signals(signum).name
                if draining:
                    # A second signal (Ctrl-C twice) cuts the grace short: the
                    # sessions go away with 1001 now, and the drain ends with them.
                    log.info("closing open sessions now", extra={"reason": name})
                    for connection in list(server.connections):
                        connection.going_away()
                    continue
                draining = True
                log.info("shutting down", extra={"reason": name, "grace_s": config.shutdown_grace_s})
                notifier.notify("STOPPING=1", f"STATUS=draining after {name}")
                nursery.start_soon(drain)
    log.info("stopped")
    return 0


def _os_error_in(error: BaseException) -> OSError | None:
    """The OSError that `error` is or holds (Trio wraps a task's failure in groups)."""
    if isinstance(error, OSError):
        return error
    if isinstance(error, BaseExceptionGroup):
        for inner in error.exceptions:
            found = _os_error_in(inner)
            if found is not None:
                return found
    return None


def run(config: Config) -> int:
    if config.workers > 1:  # issue 6: N processes share the port (SO_REUSEPORT)
        from .workers import run_workers

        return run_workers(config, run_one)
    return run_one(config)


def run_one(config: Config, worker: WorkerLink | None = None) -> int:
    return trio.run(serve, config, None, worker)
