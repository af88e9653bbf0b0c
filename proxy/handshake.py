"""What the proxy decides from a client's opening handshake, before accepting it.

Pure functions of the request line and headers, so each rule (P2.7-P2.10) is
testable without a socket.
"""

from __future__ import annotations

import hmac
import re
from collections.abc import Iterable, Sequence
from urllib.parse import parse_qs, urlsplit

import attrs

# P2.10: Deepgram's own agent path, so an SDK only needs a new base URL.
DEEPGRAM_AGENT_PATH = "/v1/agent/converse"

# P2.7: the subprotocol schemes that carry a token in the next entry.
TOKEN_SCHEMES = ("token", "bearer")

# P2.8: a client's `?traceId=` lands in every log record of its connection,
# so it must be short and plain: no newline to forge a record, no 5,000
# characters repeated in each line. 128 covers a UUID, a W3C traceparent
# (55) and most tracing ids; anything else falls back to the connection id.
TRACE_ID_MAX_LENGTH = 128
TRACE_ID = re.compile(rf"[A-Za-z0-9._:-]{{1,{TRACE_ID_MAX_LENGTH}}}")


@attrs.frozen
class Decision:
    """Accept with `subprotocol` (status None) or reject with an HTTP status."""

    status: int | None
    reason: str = ""
    subprotocol: str | None = None
    trace_id: str | None = None
    # Why the client's traceId was not used (P2.8), for the log; None if it was.
    trace_id_refused: str | None = None


def header(headers: Iterable[tuple[bytes, bytes]], name: bytes) -> str | None:
    name = name.lower()
    for key, value in headers:
        if key.lower() == name:
            return value.decode("latin-1")
    return None


def presented_tokens(
    query: dict[str, list[str]], headers: Iterable[tuple[bytes, bytes]], subprotocols: Sequence[str]
) -> list[str]:
    """Every token the client presented, by any of the P2.7 carriers."""
    tokens = list(query.get("token", []))
    authorization = header(headers, b"authorization")
    if authorization:
        scheme, _, value = authorization.partition(" ")
        if scheme.lower() in ("bearer", "token") and value.strip():
            tokens.append(value.strip())
    for index, protocol in enumerate(subprotocols[:-1]):
        if protocol.lower() in TOKEN_SCHEMES:
            tokens.append(subprotocols[index + 1])
    return tokens


def token_matches(presented: Sequence[str], configured: Sequence[str]) -> bool:
    """Constant-time comparison against every configured token (P2.7)."""
    matched = False
    for candidate in presented:
        for token in configured:
            # Compare every pair, so the time taken does not say which one matched.
            matched |= hmac.compare_digest(candidate.encode(), token.encode())
    return matched


def decide(
    target: str,
    headers: Iterable[tuple[bytes, bytes]],
    subprotocols: Sequence[str],
    *,
    path: str,
    auth_tokens: Sequence[str] = (),
    allowed_origins: Sequence[str] = (),
) -> Decision:
    """Decide a handshake: 404 for an unknown path, 401/403 for auth, else accept."""
    headers = list(headers)
    parts = urlsplit(target)
    if parts.path not in (path, DEEPGRAM_AGENT_PATH):
        return Decision(404, "no such path")
    query = parse_qs(parts.query)
    if allowed_origins:
        origin = header(headers, b"origin")
        # A request with no Origin (SDKs, phone bridges) is not a browser's.
        if origin is not None and origin not in allowed_origins:
            return Decision(403, "origin not allowed")
    if auth_tokens and not token_matches(presented_tokens(query, headers, subprotocols), auth_tokens):
        return Decision(401, "missing or invalid token")
    trace_id, refused = checked_trace_id(query.get("traceId"))
    return Decision(
        None,
        # P2.9: browsers abort unless the answer selects one of their offers.
        subprotocol=subprotocols[0] if subprotocols else None,
        trace_id=trace_id,
        trace_id_refused=refused,
    )


def checked_trace_id(values: Sequence[str] | None) -> tuple[str | None, str | None]:
    """P2.8: (the trace id to use, or None for the connection id; why a given one was refused)."""
    if not values:
        return None, None
    value = values[0]
    if TRACE_ID.fullmatch(value):
        return value, None
    if len(value) > TRACE_ID_MAX_LENGTH:
        return None, f"traceId longer than {TRACE_ID_MAX_LENGTH} characters ({len(value)})"
    return None, "traceId has characters outside A-Za-z0-9._:-"
