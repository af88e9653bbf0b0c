"""Optional: the same log records, exported as OpenTelemetry log records over OTLP.

On when the `otel` extra is installed (`pip install '.[otel]'`) and
`OTEL_EXPORTER_OTLP_ENDPOINT` (or `OTEL_EXPORTER_OTLP_LOGS_ENDPOINT`) is set;
the exporter reads the other standard `OTEL_*` variables itself (headers,
timeout, batch delay). Records carry the same whitelisted fields as the
stderr lines (`connection_id`, `trace_id`, `error.code`, ...), as attributes,
and the same secrets are masked in their body.
"""

from __future__ import annotations

import logging
import os
import sys
import threading
from collections.abc import Iterable, Mapping
from typing import Any

from .logfields import Redactor, record_fields

ENDPOINT_VARIABLES = ("OTEL_EXPORTER_OTLP_ENDPOINT", "OTEL_EXPORTER_OTLP_LOGS_ENDPOINT")
DEFAULT_SERVICE_NAME = "openai-realtime-proxy"
# How long the last export may hold the exit.
SHUTDOWN_EXPORT_S = 2.0


def wanted(environ: Mapping[str, str] | None = None) -> bool:
    environ = os.environ if environ is None else environ
    return any(environ.get(name) for name in ENDPOINT_VARIABLES)


class OtlpHandler(logging.Handler):
    """Turns each `logging` record into an OpenTelemetry log record (batched, exported off-thread)."""

    def __init__(self, provider: Any, secrets: Iterable[str] = ()) -> None:
        super().__init__()
        from opentelemetry._logs import LogRecord, SeverityNumber

        self._provider = provider
        self._logger = provider.get_logger("proxy")
        self._record_class = LogRecord
        self._severity = {
            logging.DEBUG: SeverityNumber.DEBUG,
            logging.INFO: SeverityNumber.INFO,
            logging.WARNING: SeverityNumber.WARN,
            logging.ERROR: SeverityNumber.ERROR,
            logging.CRITICAL: SeverityNumber.FATAL,
        }
        self._redact = Redactor(secrets)

    def emit(self, record: logging.LogRecord) -> None:
        # Only the proxy's own records: the exporter's own logging (and the
        # HTTP library's) must not feed back into the export.
        if record.name != "proxy" and not record.name.startswith("proxy."):
            return
        try:
            attributes = {
                key: value if isinstance(value, (str, bool, int, float)) else str(value)
                for key, value in record_fields(record).items()
            }
            attributes = {key: self._redact(v) if isinstance(v, str) else v for key, v in attributes.items()}
            attributes["logger.name"] = record.name
            if record.exc_info and record.exc_info[0] is not None:
                attributes["exception.type"] = record.exc_info[0].__name__
                attributes["exception.message"] = self._redact(str(record.exc_info[1]))
            self._logger.emit(
                self._record_class(
                    timestamp=int(record.created * 1e9),
                    severity_number=self._severity.get(record.levelno),
                    severity_text=record.levelname,
                    body=self._redact(record.getMessage()),
                    attributes=attributes,
                )
            )
        except Exception:
            self.handleError(record)

    def close(self) -> None:
        # Exports what is still batched; runs at interpreter exit via logging.shutdown.
        # An unreachable collector would hold the exit for the exporter's timeout
        # and retries (about 14 s): the export gets SHUTDOWN_EXPORT_S, in a
        # daemon thread that the exit does not wait for, and then it is dropped.
        try:
            flush = threading.Thread(target=self._provider.shutdown, name="otlp-shutdown", daemon=True)
            flush.start()
            flush.join(SHUTDOWN_EXPORT_S)
            if flush.is_alive():
                print(f"proxy: OTLP log export unfinished after {SHUTDOWN_EXPORT_S:g} s; dropped", file=sys.stderr)
        finally:
            super().close()


def handler(secrets: Iterable[str] = (), environ: Mapping[str, str] | None = None) -> logging.Handler | None:
    """An OTLP handler if wanted and installed; None otherwise (a missing extra is reported on stderr)."""
    if not wanted(environ):
        return None
    try:
        from opentelemetry.exporter.otlp.proto.http._log_exporter import OTLPLogExporter
        from opentelemetry.sdk._logs import LoggerProvider
        from opentelemetry.sdk._logs.export import BatchLogRecordProcessor
        from opentelemetry.sdk.resources import Resource
    except ImportError:
        logging.getLogger("proxy").warning(
            "OTEL_EXPORTER_OTLP_ENDPOINT is set but the otel extra is not installed; logs stay on stderr only"
        )
        return None
    environ = os.environ if environ is None else environ
    resource = Resource.create({"service.name": environ.get("OTEL_SERVICE_NAME") or DEFAULT_SERVICE_NAME})
    # shutdown_on_exit=False: close() above is the one, bounded, shutdown.
    provider = LoggerProvider(resource=resource, shutdown_on_exit=False)
    provider.add_log_record_processor(BatchLogRecordProcessor(OTLPLogExporter()))
    return OtlpHandler(provider, secrets)
