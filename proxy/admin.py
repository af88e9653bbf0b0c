"""The admin listener: health, readiness and Prometheus metrics on their own port.

A deliberately tiny HTTP/1.1 responder (one request per connection, then
close) rather than a web framework: three read-only GET endpoints do not
justify one. It listens on loopback by default, because /metrics tells a
stranger how busy the proxy is.

    GET /healthz  200 while the process runs its event loop
    GET /readyz   200 while new clients are accepted; 503 while draining or full
    GET /metrics  Prometheus text exposition format
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Iterator
from typing import TYPE_CHECKING, Any

import attrs
import trio
from prometheus_client import CollectorRegistry, generate_latest
from prometheus_client.process_collector import ProcessCollector

from .metrics import ProxyCollector

if TYPE_CHECKING:
    from .server import ProxyServer

log = logging.getLogger("proxy.admin")

MAX_REQUEST_HEAD = 8192
REQUEST_TIMEOUT_S = 5.0
# The classic text exposition format, which `generate_latest` writes and every
# Prometheus version reads.
METRICS_CONTENT_TYPE = "text/plain; version=0.0.4; charset=utf-8"
REASONS = {200: "OK", 400: "Bad Request", 404: "Not Found", 405: "Method Not Allowed", 503: "Service Unavailable"}


@attrs.define
class AdminServer:
    """Serves the admin endpoints for one `ProxyServer` until cancelled."""

    server: ProxyServer
    host: str = "127.0.0.1"
    port: int = 0
    # With several workers: a callable giving the figures of all of them
    # (proxy/worker_metrics.py); otherwise this process's server is read.
    view: Callable[[ProxyServer], Any] | None = None
    registry: CollectorRegistry = attrs.field(init=False)

    def __attrs_post_init__(self) -> None:
        self.registry = CollectorRegistry(auto_describe=False)
        self.registry.register(_ViewCollector(self._figures))
        ProcessCollector(namespace="openai_proxy", registry=self.registry)

    async def serve(self, *, task_status: trio.TaskStatus = trio.TASK_STATUS_IGNORED) -> None:
        """Listen; `task_status.started(self)` once bound (`self.port` is then the real port)."""
        listeners = await trio.open_tcp_listeners(self.port, host=self.host)
        self.port = listeners[0].socket.getsockname()[1]
        log.info(f"admin listening on http://{_host_for_url(self.host)}:{self.port}")
        task_status.started(self)
        await trio.serve_listeners(self._handle, listeners)

    def respond(self, method: str, target: str) -> tuple[int, str, bytes]:
        """(status, content type, body) for one request line; pure apart from reading the server."""
        path = target.split("?", 1)[0]
        if path not in ("/healthz", "/readyz", "/metrics"):
            return 404, "text/plain; charset=utf-8", b"not found\n"
        if method not in ("GET", "HEAD"):
            return 405, "text/plain; charset=utf-8", b"method not allowed\n"
        if path == "/healthz":
            return 200, "text/plain; charset=utf-8", b"ok\n"
        if path == "/readyz":
            # Draining, or full (new clients would get 503 at the handshake): send them elsewhere.
            reason = self._figures().not_ready_reason()
            if reason is not None:
                return 503, "text/plain; charset=utf-8", f"{reason}\n".encode()
            return 200, "text/plain; charset=utf-8", b"ready\n"
        return 200, METRICS_CONTENT_TYPE, generate_latest(self.registry)

    async def _handle(self, stream: trio.abc.Stream) -> None:
        try:
            with trio.move_on_after(REQUEST_TIMEOUT_S):
                head = await _read_head(stream)
                request_line = head.split(b"\r\n", 1)[0].decode("latin-1").split()
                if len(request_line) != 3 or not request_line[2].startswith("HTTP/1."):
                    status, content_type, body = 400, "text/plain; charset=utf-8", b"bad request\n"
                    method = "GET"
                else:
                    method, target, _ = request_line
                    status, content_type, body = self.respond(method, target)
                reply = (
                    f"HTTP/1.1 {status} {REASONS[status]}\r\n"
                    f"Content-Type: {content_type}\r\n"
                    f"Content-Length: {len(body)}\r\n"
                    "Cache-Control: no-store\r\n"
                    "Connection: close\r\n\r\n"
                ).encode() + (b"" if method == "HEAD" else body)
                await stream.send_all(reply)
        except (trio.BrokenResourceError, trio.ClosedResourceError, ValueError):
            pass  # the scraper went away or sent garbage; nothing to answer
        except Exception:
            log.exception("admin request failed")
        finally:
            await trio.aclose_forcefully(stream)


    def _figures(self) -> Any:
        return self.server if self.view is None else self.view(self.server)


class _ViewCollector(ProxyCollector):
    """A `ProxyCollector` over whatever `figures()` gives at scrape time (one worker, or all)."""

    def __init__(self, figures: Callable[[], Any]) -> None:
        self.figures = figures

    def collect(self) -> Iterator[Any]:
        self.server = self.figures()
        return super().collect()


async def _read_head(stream: trio.abc.ReceiveStream) -> bytes:
    """Bytes up to the blank line ending the request head; ValueError if too long or cut short."""
    data = b""
    while b"\r\n\r\n" not in data:
        if len(data) > MAX_REQUEST_HEAD:
            raise ValueError("request head too long")
        chunk = await stream.receive_some(4096)
        if not chunk:
            raise ValueError("connection closed mid-request")
        data += chunk
    return data


def _host_for_url(host: str) -> str:
    return f"[{host}]" if ":" in host else host
