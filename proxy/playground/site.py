"""Answering the playground's plain HTTP requests, sans-I/O: request head in, response bytes out.

h11 (already under wsproto) parses the request and frames the answer, so
nothing here touches a socket. Only GET and HEAD of the page's own files are
answered; an upgrade request never lands here unless it was malformed, and
then the WebSocket layer's own 4xx stands.
"""

from __future__ import annotations

import json
from http import HTTPStatus
from collections.abc import Callable
from importlib import resources
from urllib.parse import urlsplit

import attrs
import h11

from ..config import Config

# Static files, read once: (file name in static/, content type).
FILES = {
    "/": ("index.html", "text/html; charset=utf-8"),
    "/index.html": ("index.html", "text/html; charset=utf-8"),
    "/playground.js": ("playground.js", "text/javascript; charset=utf-8"),
    "/capture-worklet.js": ("capture-worklet.js", "text/javascript; charset=utf-8"),
    "/playground.css": ("playground.css", "text/css; charset=utf-8"),
}
CONFIG_PATH = "/playground.json"

# The page loads only its own files and talks only to its own host: a
# stricter policy than it needs costs nothing and blocks injected content.
SECURITY_HEADERS = [
    (b"content-security-policy",
     b"default-src 'none'; script-src 'self'; style-src 'self'; connect-src 'self'; "
     b"img-src 'self' data:; base-uri 'none'; form-action 'none'; frame-ancestors 'none'"),
    (b"x-content-type-options", b"nosniff"),
    (b"referrer-policy", b"no-referrer"),
    (b"cache-control", b"no-store"),
]


@attrs.frozen
class Site:
    """What the page is told about this proxy (never a secret: no key, no token)."""

    path: str
    demo: bool
    token_required: bool

    @classmethod
    def from_config(cls, config: Config) -> Site:
        return cls(path=config.path, demo=config.demo, token_required=bool(config.auth_tokens))

    def settings_json(self) -> bytes:
        return json.dumps(attrs.asdict(self)).encode()


def _static(name: str) -> bytes:
    return resources.files(__package__).joinpath("static", name).read_bytes()


_CACHE: dict[str, bytes] = {}


def answer(head: bytes, site: Site) -> bytes | None:
    """The HTTP response to the request in `head`, or None when it is not the playground's."""
    connection = h11.Connection(h11.SERVER)
    try:
        connection.receive_data(head)
        request = connection.next_event()
    except h11.RemoteProtocolError:
        return None
    if not isinstance(request, h11.Request):
        return None
    headers = {name.lower(): value for name, value in request.headers}
    if b"upgrade" in headers or b"sec-websocket-key" in headers:
        return None  # a WebSocket attempt: its own rejection says what was wrong
    path = urlsplit(request.target.decode("latin-1")).path
    if path == CONFIG_PATH:
        body, content_type = site.settings_json(), "application/json"
    elif path in FILES:
        name, content_type = FILES[path]
        body = _CACHE.get(name) or _CACHE.setdefault(name, _static(name))
    else:
        return None
    if request.method not in (b"GET", b"HEAD"):
        return _respond(connection, 405, b"method not allowed\n", "text/plain", head_only=False,
                        extra=[(b"allow", b"GET, HEAD")])
    return _respond(connection, 200, body, content_type, head_only=request.method == b"HEAD")


def _respond(
    connection: h11.Connection, status: int, body: bytes, content_type: str, *, head_only: bool,
    extra: list[tuple[bytes, bytes]] | None = None,
) -> bytes:
    headers = [
        (b"content-type", content_type.encode()),
        (b"content-length", str(len(body)).encode()),
        (b"connection", b"close"),
        *SECURITY_HEADERS,
        *(extra or []),
    ]
    reason = HTTPStatus(status).phrase.encode()
    data = connection.send(h11.Response(status_code=status, headers=headers, reason=reason)) or b""
    if not head_only:
        data += connection.send(h11.Data(data=body)) or b""
    data += connection.send(h11.EndOfMessage()) or b""
    return data


def responder(config: Config) -> Callable[[bytes], bytes | None]:
    """The hook for the WebSocket layer: request head -> response bytes, or None."""
    site = Site.from_config(config)
    return lambda head: answer(head, site)
