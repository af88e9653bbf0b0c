"""P1.1, P5.10: one client text frame -> a client message model, or why not.

Pure and stateless. The outcome is the message, or a `Refusal` carrying the
`Error` code and description the client gets; the session decides what a
valid message means in its phase.
"""

from __future__ import annotations

import json
import re
from typing import Any

import attrs

from ..protocol import deepgram as dg
from ..protocol.converter import MessageError, structure

# A cheap test of the raw text first: only "\uD8.." to "\uDF.." escapes can
# decode to a surrogate, so ordinary messages never pay for the walk.
_SURROGATE_ESCAPE = re.compile(r"\\u[dD][89a-fA-F]")
_SURROGATE = re.compile("[\ud800-\udfff]")


@attrs.frozen
class Refusal:
    code: str
    description: str


def parse_client_text(text: str) -> Any:
    """The structured client message, or a `Refusal`."""
    try:
        data = json.loads(text)
    except (ValueError, RecursionError):  # RecursionError: nesting deeper than the parser's stack
        return Refusal("INVALID_MESSAGE", "message is not valid JSON")
    if _SURROGATE_ESCAPE.search(text) is not None and _has_lone_surrogate_or_deep(data):
        # What JSON.stringify yields for a string cut mid-emoji: valid JSON,
        # but no UTF-8 can carry it, so it could never be sent on.
        return Refusal("INVALID_MESSAGE", "message holds a lone UTF-16 surrogate (\\ud800-\\udfff), which is not text")
    if not isinstance(data, dict):
        return Refusal("INVALID_MESSAGE", "message must be a JSON object")
    message_type = data.get("type")
    cls = dg.CLIENT_MESSAGE_TYPES.get(message_type) if isinstance(message_type, str) else None
    if cls is None:
        return Refusal("UNKNOWN_MESSAGE_TYPE", f"unknown or unsupported message type {message_type!r}")
    try:
        return structure(data, cls)
    except MessageError as error:
        code = "INVALID_SETTINGS" if cls is dg.Settings else "INVALID_MESSAGE"
        return Refusal(code, f"{message_type}: {error.path.replace('$.', '')} {error.problem}")


def _has_lone_surrogate_or_deep(value: Any) -> bool:
    try:
        return _has_lone_surrogate(value)
    except RecursionError:
        return True  # nested deeper than we walk: refused like JSON nested past the parser


def _has_lone_surrogate(value: Any) -> bool:
    """Whether any string in the parsed JSON holds a surrogate (a paired one decodes to one character)."""
    if isinstance(value, str):
        return _SURROGATE.search(value) is not None
    if isinstance(value, dict):
        return any(_has_lone_surrogate(k) or _has_lone_surrogate(v) for k, v in value.items())
    if isinstance(value, list):
        return any(_has_lone_surrogate(v) for v in value)
    return False
