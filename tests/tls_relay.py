"""A TLS relay in front of the plain fake upstream, so tests can offer wss:// upstream."""

from __future__ import annotations

from collections.abc import Awaitable, Callable

import trio


def relay_to(port: int) -> Callable[[trio.SSLStream], Awaitable[None]]:
    """A `serve_ssl_over_tcp` handler: bytes both ways to 127.0.0.1:`port` until either side ends."""

    async def relay(tls: trio.SSLStream) -> None:
        plain = await trio.open_tcp_stream("127.0.0.1", port)

        async def pump(source, sink) -> None:
            try:
                async for chunk in source:
                    await sink.send_all(chunk)
            except (trio.BrokenResourceError, trio.ClosedResourceError):
                pass
            finally:
                await trio.aclose_forcefully(sink)

        async with trio.open_nursery() as pumps:
            pumps.start_soon(pump, tls, plain)
            pumps.start_soon(pump, plain, tls)

    return relay
