"""What a log record may carry, and how its text is made safe to write.

A leaf module (standard library and the pure `redact.py` only) shared by
the stderr formatters (`logs.py`) and the OTLP export (`otel.py`), so
neither imports the other.

- `FIELDS`: the whitelist of record extras and their output names.
- `Redactor`: masks the configured secrets (the API key, the client tokens)
  and anything shaped like an OpenAI key (P1.5, P2.7), with the scrubber
  that also cleans upstream text for clients (`redact.py`).
- `escape_control` / `text_value`: the text format's defence against a
  value (a `?traceId=`, an upstream error message) that carries a newline
  or a terminal escape and would otherwise forge a record of its own.
"""

from __future__ import annotations

import logging
import re
from collections.abc import Iterable

from .redact import MASK
from .redact import Redactor as WholeWordRedactor

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
    ("item_id", "item_id"),
    ("timer", "timer"),
    ("kind", "kind"),
    # Session renewal (README "Session renewal").
    ("cause", "cause"),
    ("replayed_items", "replayed_items"),
    ("dropped_entries", "dropped_entries"),
    ("attempt", "attempt"),
    ("workers", "workers"),
)

REDACTED = MASK


def record_fields(record: logging.LogRecord) -> dict[str, object]:
    """The whitelisted extras present on `record`, under their output keys."""
    fields = {}
    for attribute, key in FIELDS:
        value = getattr(record, attribute, None)
        if value is not None:
            fields[key] = value
    return fields


# --------------------------------------------------------------- redaction

# A secret this long is also masked inside a longer word: by chance it occurs
# nowhere else, and a key glued to other text is still the key. Shorter ones
# are masked only as whole words (`redact.Redactor`), so a short secret does
# not eat into timestamps. Client tokens are refused below this length at
# start (config.py); only a short API key relies on the whole-word rule.
MASK_ANYWHERE_LENGTH = 16


class Redactor:
    """What log text goes through: `redact.Redactor` (whole words, `sk-` keys) plus long secrets anywhere."""

    def __init__(self, secrets: Iterable[str] = ()) -> None:
        secrets = {secret for secret in secrets if secret}
        self._whole_words = WholeWordRedactor(secrets)
        # Longest first, so a secret that contains another is masked whole.
        long = sorted((s for s in secrets if len(s) >= MASK_ANYWHERE_LENGTH), key=len, reverse=True)
        self._anywhere = re.compile("|".join(map(re.escape, long))) if long else None

    def __call__(self, text: str) -> str:
        if self._anywhere is not None:
            text = self._anywhere.sub(REDACTED, text)
        return self._whole_words.scrub(text)


# ---------------------------------------------------------------- escaping

# C0 and C1 controls (newline, carriage return, ESC of terminal sequences),
# DEL, the Unicode line and paragraph separators, and lone surrogates (which
# a UTF-8 stderr cannot even encode).
_CONTROL = re.compile("[\x00-\x1f\x7f-\x9f\u2028\u2029\ud800-\udfff]")
_NAMED = {"\n": "\\n", "\r": "\\r", "\t": "\\t"}
# A field value written bare in the text format; anything else is quoted.
_BARE = re.compile(r'[^\s"=\[\]\\]+')


def _escape_one(match: re.Match[str]) -> str:
    char = match.group()
    named = _NAMED.get(char)
    if named:
        return named
    code = ord(char)
    return f"\\x{code:02x}" if code < 0x100 else f"\\u{code:04x}"


def escape_control(text: str) -> str:
    """`text` with every control character written as an escape: one line, nothing for a terminal to obey."""
    return _CONTROL.sub(_escape_one, text)


def text_value(value: object) -> str:
    """A field value for `key=value`: bare when plain, else quoted, so no value can fake another field."""
    text = str(value)
    if _BARE.fullmatch(text):
        return escape_control(text)
    return '"' + escape_control(text.replace("\\", "\\\\").replace('"', '\\"')) + '"'
