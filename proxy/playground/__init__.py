"""The browser playground (issue 13): one static page the proxy serves at `/`.

`responder(config)` returns the function the WebSocket layer calls with the
head of a plain HTTP request it could not take as an upgrade (proxy/ws/opening.py);
it answers the playground's few files and says None to anything else, so
every other request gets the answer it got before.
"""

from .site import Site, responder

__all__ = ["Site", "responder"]
