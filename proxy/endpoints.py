"""Server-side functions: the HTTP request a function's `endpoint` stands for.

Deepgram executes a function whose Settings entry has an `endpoint` itself;
here the proxy does, in the Trio layer, on the session's `CallEndpoint`
action. Whatever happens, the caller gets one string back, the
`function_call_output` the model will read: the response body, or a small
JSON object `{"error": ...}` saying why there is none (the model can then
tell the user), never an exception.

What keeps a client's Settings from steering the proxy into the operator's
network (proxy.translate.endpoint_policy): the host must be listed; every
address it resolves to must be public unless listed itself; the request
goes to the address that was checked (not to a second DNS answer); no
redirect is followed; environment proxies are ignored (they would route
around the check). A deadline bounds the whole call and a cap bounds the
body read, so a slow or huge endpoint costs a bounded amount.
"""

from __future__ import annotations

import json
import logging
import socket
from typing import TYPE_CHECKING, Any
from urllib.parse import urlsplit, urlunsplit

import trio

from .protocol.deepgram import FunctionEndpoint
from .translate.endpoint_policy import EndpointRefused, FunctionHosts

if TYPE_CHECKING:
    import httpx

log = logging.getLogger("proxy.endpoints")

# Methods whose arguments go in the query string; the others send them as a JSON body.
QUERY_METHODS = ("GET", "DELETE")


def _failure(reason: str) -> str:
    return json.dumps({"error": reason}, separators=(",", ":"))


async def _resolve(host: str, port: int) -> list[str]:
    infos = await trio.socket.getaddrinfo(host, port, type=socket.SOCK_STREAM)
    return list(dict.fromkeys(info[4][0] for info in infos))


def _arguments(arguments: str) -> Any:
    try:
        return json.loads(arguments) if arguments.strip() else {}
    except ValueError:
        return None


def _query(arguments: Any) -> dict[str, str]:
    if not isinstance(arguments, dict):
        return {}
    return {key: value if isinstance(value, str) else json.dumps(value) for key, value in arguments.items()}


async def call_endpoint(
    endpoint: FunctionEndpoint,
    arguments: str,
    *,
    hosts: FunctionHosts,
    timeout_s: float,
    max_response_bytes: int,
    transport: httpx.AsyncBaseTransport | None = None,
) -> str:
    """Run one server-side function call; returns its output (never raises on endpoint trouble).

    Waits at most `timeout_s` for the whole call, DNS included.
    """
    # Imported on first use: most deployments define no server-side
    # function, and the daemon starts a tenth of a second sooner without it.
    import httpx

    with trio.move_on_after(timeout_s):
        try:
            return await _call(endpoint, arguments, hosts, max_response_bytes, transport, timeout_s)
        except EndpointRefused as refused:
            log.warning("server-side function endpoint refused", extra={"detail": str(refused)})
            return _failure(f"endpoint refused: {refused}")
        except (OSError, httpx.HTTPError) as error:
            log.warning("server-side function endpoint failed", extra={"detail": type(error).__name__})
            return _failure(f"endpoint unreachable ({type(error).__name__})")
    log.warning("server-side function endpoint timed out", extra={"detail": f"{timeout_s} s"})
    return _failure(f"endpoint gave no answer within {timeout_s:g} s")


async def _call(
    endpoint: FunctionEndpoint,
    arguments: str,
    hosts: FunctionHosts,
    max_response_bytes: int,
    transport: httpx.AsyncBaseTransport | None,
    timeout_s: float,
) -> str:
    import httpx

    host = hosts.check_url(endpoint.url)  # again: the allowlist may have changed since Settings
    parts = urlsplit(endpoint.url)
    port = parts.port or (443 if parts.scheme == "https" else 80)
    try:
        addresses = await _resolve(host, port)
    except OSError:
        raise EndpointRefused(f"endpoint host {host!r} does not resolve") from None
    for address in addresses:  # every answer, so a second one cannot be the way in
        hosts.check_address(host, address)
    pinned = addresses[0]
    netloc = f"[{pinned}]" if ":" in pinned else pinned
    if parts.port is not None:
        netloc += f":{parts.port}"
    url = urlunsplit((parts.scheme, netloc, parts.path or "/", parts.query, ""))

    method = (endpoint.method or "POST").upper()
    headers = dict(endpoint.headers or {})
    headers["Host"] = parts.netloc.rsplit("@", 1)[-1]
    parsed = _arguments(arguments)
    request_args: dict[str, Any] = {"headers": headers}
    if method in QUERY_METHODS:
        request_args["params"] = _query(parsed)
    else:
        headers.setdefault("Content-Type", "application/json")
        request_args["content"] = arguments.encode() if parsed is not None else json.dumps({"arguments": arguments}).encode()
    if parts.scheme == "https":
        # TLS (SNI and the certificate check) still names the host, not the address.
        request_args["extensions"] = {"sni_hostname": host}

    async with httpx.AsyncClient(
        transport=transport, follow_redirects=False, trust_env=False, timeout=timeout_s
    ) as client:
        async with client.stream(method, url, **request_args) as response:
            body = bytearray()
            async for chunk in response.aiter_bytes():
                body += chunk
                if len(body) > max_response_bytes:
                    return _failure(f"endpoint response larger than {max_response_bytes} bytes")
    text = body.decode("utf-8", errors="replace")
    if 200 <= response.status_code < 300:
        return text
    return json.dumps({"error": f"endpoint answered HTTP {response.status_code}", "body": text[:1024]}, separators=(",", ":"))
