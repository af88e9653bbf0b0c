"""Log records to stderr: JSON lines by default, or a human format (`--log-format text`).

Every record of a connection carries `connection_id` and `trace_id` (P2.1,
P2.8). Fields are whitelisted: a record carries only the extras named in
`FIELDS`, so it never carries an audio payload, the API key or a client
token (P1.5). As a second guard, the configured secrets are masked in the
finished line, so even a third-party exception text cannot leak them.

Code attaches fields with `extra={"error_code": ...}`; the output names
them as `FIELDS` says (`error.code`), close to OpenTelemetry's attribute
naming; the optional OTLP export (`otel.py`) sends the same keys as attributes.
"""

from __future__ import annotations

import json
import logging
import sys
import time
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
    ("client_address", "client.address"),  # the peer, or X-Forwarded-For from a trusted proxy
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


class _Redacting(logging.Formatter):
    def __init__(self, secrets: Iterable[str] = ()) -> None:
        super().__init__()
        # Longest first, so a secret that contains another is masked whole.
        self.secrets = sorted({secret for secret in secrets if secret}, key=len, reverse=True)

    def redact(self, line: str) -> str:
        for secret in self.secrets:
            if secret in line:
                line = line.replace(secret, REDACTED)
        return line


class JsonFormatter(_Redacting):
    def format(self, record: logging.LogRecord) -> str:
        entry = {
            "time": time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(record.created)) + f".{int(record.msecs):03d}Z",
            "level": record.levelname.lower(),
            "logger": record.name,
            "message": record.getMessage(),
            **record_fields(record),
        }
        if record.exc_info:
            entry["exception"] = self.formatException(record.exc_info)
        return self.redact(json.dumps(entry, default=str))


class TextFormatter(_Redacting):
    def format(self, record: logging.LogRecord) -> str:
        stamp = time.strftime("%H:%M:%S", time.localtime(record.created)) + f".{int(record.msecs):03d}"
        extras = " ".join(f"{key}={value}" for key, value in record_fields(record).items())
        line = f"{stamp} {record.levelname:<7} {record.getMessage()}" + (f" [{extras}]" if extras else "")
        if record.exc_info:
            line += "\n" + self.formatException(record.exc_info)
        return self.redact(line)


def configure(level: str = "info", fmt: str = "json", secrets: Iterable[str] = ()) -> None:
    """Send every record to stderr in `fmt`; `secrets` are masked wherever they appear."""
    secrets = tuple(secrets)
    handler = logging.StreamHandler(sys.stderr)
    handler.setFormatter(JsonFormatter(secrets) if fmt == "json" else TextFormatter(secrets))
    root = logging.getLogger()
    root.handlers[:] = [handler]
    root.setLevel(level.upper())
    from . import otel  # optional OTLP export of the same records

    otlp = otel.handler(secrets)
    if otlp is not None:
        root.addHandler(otlp)
    # trio-websocket logs every frame at debug; keep ours readable.
    logging.getLogger("trio-websocket").setLevel(max(logging.INFO, root.level))
