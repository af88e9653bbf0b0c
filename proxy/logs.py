"""Log records to stderr: JSON lines by default, or a human format.

Every record of a connection carries `connection_id` and `trace_id` (P2.1,
P2.8). Fields are whitelisted: a record never carries an audio payload, the
API key or a client token (P1.5).
"""

from __future__ import annotations

import json
import logging
import sys
import time

# Extra fields a record may carry, in output order.
FIELDS = (
    "connection_id",
    "trace_id",
    "direction",
    "message_type",
    "error_code",
    "client_close_code",
    "upstream_close_code",
    "status",
    "reason",
    "detail",
    "response_id",
    "call_id",
    "missing_signal",
)


class JsonFormatter(logging.Formatter):
    def format(self, record: logging.LogRecord) -> str:
        entry = {
            "time": time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(record.created)) + f".{int(record.msecs):03d}Z",
            "level": record.levelname.lower(),
            "logger": record.name,
            "message": record.getMessage(),
        }
        for field in FIELDS:
            value = getattr(record, field, None)
            if value is not None:
                entry[field] = value
        if record.exc_info:
            entry["exception"] = self.formatException(record.exc_info)
        return json.dumps(entry, default=str)


class TextFormatter(logging.Formatter):
    def format(self, record: logging.LogRecord) -> str:
        stamp = time.strftime("%H:%M:%S", time.localtime(record.created)) + f".{int(record.msecs):03d}"
        extras = " ".join(
            f"{field}={getattr(record, field)}" for field in FIELDS if getattr(record, field, None) is not None
        )
        line = f"{stamp} {record.levelname:<7} {record.getMessage()}" + (f" [{extras}]" if extras else "")
        if record.exc_info:
            line += "\n" + self.formatException(record.exc_info)
        return line


def configure(level: str = "info", fmt: str = "json") -> None:
    handler = logging.StreamHandler(sys.stderr)
    handler.setFormatter(JsonFormatter() if fmt == "json" else TextFormatter())
    root = logging.getLogger()
    root.handlers[:] = [handler]
    root.setLevel(level.upper())
    # trio-websocket logs every frame at debug; keep ours readable.
    logging.getLogger("trio-websocket").setLevel(max(logging.INFO, root.level))
