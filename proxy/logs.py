"""Log records to stderr: JSON lines by default, or a human format (`--log-format text`).

Every record of a connection carries `connection_id` and `trace_id` (P2.1,
P2.8). Fields are whitelisted: a record carries only the extras named in
`FIELDS`, so it never carries an audio payload, the API key or a client
token (P1.5). As a second guard, the configured secrets (as whole words,
see `logfields.Redactor`) and anything shaped like an OpenAI key are masked
in the message, the fields and the traceback, so even a third-party
exception text cannot leak them. The text format escapes control
characters, so one record is always one line (plus its indented traceback).

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

from .logfields import FIELDS, REDACTED, Redactor, escape_control, record_fields, text_value

__all__ = ["FIELDS", "REDACTED", "JsonFormatter", "TextFormatter", "configure", "record_fields"]


class _Redacting(logging.Formatter):
    def __init__(self, secrets: Iterable[str] = ()) -> None:
        super().__init__()
        self.redact = Redactor(secrets)

    def _fields(self, record: logging.LogRecord) -> dict[str, object]:
        # Numbers stay numbers; anything else is masked as the text it will be written as.
        return {
            key: value if isinstance(value, (bool, int, float)) else self.redact(str(value))
            for key, value in record_fields(record).items()
        }


class JsonFormatter(_Redacting):
    """One JSON object per line. Masking happens before encoding, so the line stays valid JSON."""

    def format(self, record: logging.LogRecord) -> str:
        entry = {
            "time": time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(record.created)) + f".{int(record.msecs):03d}Z",
            "level": record.levelname.lower(),
            "logger": record.name,
            "message": self.redact(record.getMessage()),
            **self._fields(record),
        }
        if record.exc_info:
            entry["exception"] = self.redact(self.formatException(record.exc_info))
        # ensure_ascii: control characters and lone surrogates become \u escapes.
        return json.dumps(entry, default=str)


class TextFormatter(_Redacting):
    """One human line per record; a traceback follows on lines that begin with white space.

    Control characters are escaped and field values quoted when not plain,
    so no message or field (a client's `?traceId=`, an upstream error text)
    can start a line that looks like a record of its own.
    """

    def format(self, record: logging.LogRecord) -> str:
        stamp = time.strftime("%H:%M:%S", time.localtime(record.created)) + f".{int(record.msecs):03d}"
        extras = " ".join(f"{key}={text_value(value)}" for key, value in self._fields(record).items())
        message = escape_control(self.redact(record.getMessage()))
        line = f"{stamp} {record.levelname:<7} {message}" + (f" [{extras}]" if extras else "")
        if record.exc_info:
            trace = self.redact(self.formatException(record.exc_info))
            line += "".join(f"\n  {escape_control(part)}" for part in trace.split("\n"))
        return line


def configure(level: str = "info", fmt: str = "json", secrets: Iterable[str] = ()) -> None:
    """Send every record to stderr in `fmt`; `secrets` are masked (`logfields.Redactor`)."""
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
