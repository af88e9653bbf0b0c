"""Running the server as a process: signals and exit status (P2.6)."""

from __future__ import annotations

import logging
import signal

import trio

from .config import Config
from .server import ProxyServer

log = logging.getLogger("proxy")


async def serve(config: Config) -> None:
    """Serve until SIGTERM or SIGINT, then drain (P2.6) and return."""
    server = ProxyServer(config)
    with trio.open_signal_receiver(signal.SIGTERM, signal.SIGINT) as signals:
        async with trio.open_nursery() as nursery:
            await nursery.start(server.serve)
            async for signum in signals:
                log.info("shutting down", extra={"reason": signal.Signals(signum).name})
                await server.shutdown()
                return


def run(config: Config) -> int:
    trio.run(serve, config)
    return 0
