"""What a log record may carry, and how its text is made safe to write.

A leaf module (standard library only) shared by the stderr formatters
(`logs.py`) and the OTLP export (`otel.py`), so neither imports the other.

- `FIELDS`: the whitelist of record extras and their output names.
- `Redactor`: masks the configured secrets (the API key, the client tokens)
  and anything shaped like an OpenAI key (P1.5, P2.7).
- `escape_control` / `text_value`: the text format's defence against a
  value (a `?traceId=`, an upstream error message) that carries a newline
  or a terminal escape and would otherwise forge a record of its own.
"""

from __future__ import annotations

import logging
import re
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


# --------------------------------------------------------------- redaction

# Characters that continue a word. A secret is masked only where it stands
# as a whole word, so a short one (`1`) does not eat into timestamps and
# ids (`2026-12-01` stays whole). `.` is not among them: a key at the end
# of a sentence ("provided: sk-...") is still a whole word.
_WORD = "A-Za-z0-9_-"
# A secret this long is masked even inside a longer word: by chance it
# occurs nowhere else, and a key glued to other text is still the key. The
# client tokens are refused below this length at start (config.py).
MASK_ANYWHERE_LENGTH = 16
# What an OpenAI key looks like (`sk-...`, `sk-proj-...`), masked even when
# it is not the configured one: an upstream error may echo another key.
_OPENAI_KEY = rf"sk-[{_WORD}]{{16,}}"


class Redactor:
    """Masks the given secrets, and OpenAI-shaped keys, in text (P1.5, P2.7)."""

    def __init__(self, secrets: Iterable[str] = ()) -> None:
        unique = {secret for secret in secrets if secret}
        # Longest first, so a secret that contains another is masked whole.
        anywhere = sorted((s for s in unique if len(s) >= MASK_ANYWHERE_LENGTH), key=len, reverse=True)
        words = sorted((s for s in unique if len(s) < MASK_ANYWHERE_LENGTH), key=len, reverse=True)
        alternatives = [re.escape(secret) for secret in anywhere]
        whole_words = [re.escape(secret) for secret in words] + [_OPENAI_KEY]
        alternatives.append(rf"(?<![{_WORD}])(?:{'|'.join(whole_words)})(?![{_WORD}])")
        self._pattern = re.compile("|".join(alternatives))

    def __call__(self, text: str) -> str:
        return self._pattern.sub(REDACTED, text)


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
