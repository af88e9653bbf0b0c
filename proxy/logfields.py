"""What a log record may carry, and how its text is made safe to write.

A leaf module (standard library only) shared by the stderr formatters
(`logs.py`) and the OTLP export (`otel.py`), so neither imports the other.

- `FIELDS`: the whitelist of record extras and their output names.
- `Redactor`: masks the configured secrets (the API key, the client tokens)
  (P1.5, P2.7).
"""

from __future__ import annotations

import logging
from collections.abc import Iterable

# Record attribute -> output key, in output order.
FIELDS: tuple[tuple[str, str], ...] = (
    ("connection_id", "connection_id"),
    ("trace_id", "trace_id"),
    ("direction", "direction"),
    ("message_type", "message_type"),
    ("error_code", "error.code"),
    ("client_close_code", "client.close_code"),
    ("upstream_close_code", "upstream.close_code"),
    ("status", "status"),  # an HTTP status, or a worker's exit status
    ("reason", "reason"),
    ("detail", "detail"),
    ("response_id", "response_id"),
    ("call_id", "call_id"),
    ("missing_signal", "missing_signal"),
    ("grace_s", "grace_s"),
    ("worker", "worker"),
    ("workers", "workers"),
)

REDACTED = "[redacted]"


def record_fields(record: logging.LogRecord) -> dict[str, object]:
    """The whitelisted extras present on `record`, under their output keys."""
    fields = {}
    for attribute, key in FIELDS:
        value = getattr(record, attribute, None)
        if value is not None:
            fields[key] = value
    return fields


class Redactor:
    """Masks the given secrets in text (P1.5, P2.7)."""

    def __init__(self, secrets: Iterable[str] = ()) -> None:
        # Longest first, so a secret that contains another is masked whole.
        self.secrets = sorted({secret for secret in secrets if secret}, key=len, reverse=True)

    def __call__(self, text: str) -> str:
        for secret in self.secrets:
            if secret in text:
                text = text.replace(secret, REDACTED)
        return text
