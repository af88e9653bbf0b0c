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

log = logging.getLogger("proxy")


async def serve(config: Config, notifier: Notifier | None = None) -> None:
    """Serve until SIGTERM or SIGINT, then drain (P2.6) and return.

    systemd hears `READY=1` once the listener is bound, `STOPPING=1` when the
    drain begins, and `WATCHDOG=1` pings while the loop runs (if asked for).
    """
    notifier = Notifier() if notifier is None else notifier
    server = ProxyServer(config)
    with trio.open_signal_receiver(signal.SIGTERM, signal.SIGINT) as signals:
        async with trio.open_nursery() as nursery:
            await nursery.start(server.serve)
            if config.admin_port is not None:
                await nursery.start(AdminServer(server, config.admin_host, config.admin_port).serve)
            scheme = "wss" if config.tls_cert_path else "ws"
            notifier.notify("READY=1", f"STATUS=listening on {scheme}://{config.host}:{server.port}{config.path}")
            nursery.start_soon(notifier.watchdog)
            async for signum in signals:
                name = signal.Signals(signum).name
                log.info("shutting down", extra={"reason": name, "grace_s": config.shutdown_grace_s})
                notifier.notify("STOPPING=1", f"STATUS=draining after {name}")
                await server.shutdown()
                # The admin listener and the watchdog end with the proxy.
                nursery.cancel_scope.cancel()
                break
    log.info("stopped")


def run(config: Config) -> int:
    if config.workers > 1:  # issue 6: N processes share the port (SO_REUSEPORT)
        from .workers import run_workers

        return run_workers(config, run_one)
    return run_one(config)


def run_one(config: Config) -> int:
    trio.run(serve, config)
    return 0
