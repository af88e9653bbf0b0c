"""A local HTTP endpoint for server-side function tests, on 127.0.0.1 only.

A plain `http.server` in a daemon thread: it records every request and
answers by path, so a test can tell "refused before any request" from
"requested and failed".
"""

from __future__ import annotations

import json
import ssl
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any
from urllib.parse import parse_qs, urlsplit

import attrs


@attrs.define
class SeenRequest:
    method: str
    path: str
    query: dict[str, list[str]]
    headers: dict[str, str]
    body: bytes


@attrs.define
class EndpointServer:
    port: int
    requests: list[SeenRequest]

    scheme: str = "http"

    def url(self, path: str, host: str = "127.0.0.1") -> str:
        return f"{self.scheme}://{host}:{self.port}{path}"


def _handler(requests: list[SeenRequest]) -> type[BaseHTTPRequestHandler]:
    class Handler(BaseHTTPRequestHandler):
        def log_message(self, *args: Any) -> None:  # keep test output clean
            pass

        def _answer(self) -> None:
            length = int(self.headers.get("Content-Length") or 0)
            body = self.rfile.read(length) if length else b""
            parts = urlsplit(self.path)
            requests.append(
                SeenRequest(self.command, parts.path, parse_qs(parts.query), {k.lower(): v for k, v in self.headers.items()}, body)
            )
            if parts.path == "/weather":
                args = json.loads(body or b"{}") if self.command != "GET" else {k: v[0] for k, v in parse_qs(parts.query).items()}
                self._send(200, json.dumps({"city": args.get("city"), "forecast": "sunny"}).encode())
            elif parts.path == "/huge":
                self._send(200, b"x" * 100_000)
            elif parts.path == "/slow":
                time.sleep(2)
                self._send(200, b"late")
            elif parts.path == "/redirect":
                self.send_response(302)
                self.send_header("Location", "http://169.254.169.254/latest/meta-data/")
                self.send_header("Content-Length", "0")
                self.end_headers()
            else:
                self._send(500, b"broken")

        def _send(self, status: int, body: bytes) -> None:
            try:
                self.send_response(status)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                self.wfile.write(body)
            except OSError:
                pass  # the proxy gave up first (deadline, size cap)

        do_GET = do_POST = do_PUT = do_PATCH = do_DELETE = _answer

    return Handler


@contextmanager
def endpoint_server(tls: ssl.SSLContext | None = None) -> Iterator[EndpointServer]:
    """Serve on 127.0.0.1; with `tls`, HTTPS with that server context."""
    requests: list[SeenRequest] = []
    server = ThreadingHTTPServer(("127.0.0.1", 0), _handler(requests))
    server.daemon_threads = True
    if tls is not None:
        server.socket = tls.wrap_socket(server.socket, server_side=True)
    thread = threading.Thread(target=server.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True)
    thread.start()
    try:
        yield EndpointServer(server.server_address[1], requests, "https" if tls is not None else "http")
    finally:
        server.shutdown()
        server.server_close()
