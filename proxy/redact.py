"""Masking secrets in text: one pure function of the text, no I/O.

Used wherever text the proxy did not write itself (an upstream error
message, an exception's description) could carry a secret toward a client
or a log (P1.5). Two things are masked:

- each given secret (the API key, the client tokens) where it stands as a
  whole word, so that a secret which happens to be a common substring does
  not mangle unrelated text (a token "1" must not turn "2026-12-01" into
  "2026-[redacted]2-01");
- anything shaped like an OpenAI key (`sk-` and at least 16 key characters),
  which catches keys the proxy was never told about, e.g. one a user pasted.

    >>> Redactor(["tok-1234567890abcdef"]).scrub("bad token tok-1234567890abcdef.")
    'bad token [redacted].'
"""

from __future__ import annotations

import re
from collections.abc import Iterable

MASK = "[redacted]"

# Characters a key or token is made of; a secret counts as a whole word when
# neither neighbour is one of these letters/digits/underscore. A hyphen is a
# boundary: "sk-...-extra" still masks the key in front of it.
_WORD = r"A-Za-z0-9_"
# OpenAI keys: "sk-", optionally a kind ("proj-", "svcacct-"), then a long
# random tail; 16 is well below any real key and well above ordinary words.
SK_KEY = re.compile(rf"(?<![{_WORD}])sk-[{_WORD}-]{{16,}}")


class Redactor:
    """Masks `secrets` (whole words) and `sk-` keys in any text given to `scrub`."""

    __slots__ = ("_patterns",)

    def __init__(self, secrets: Iterable[str] = ()) -> None:
        words = sorted({s for s in secrets if s}, key=len, reverse=True)  # longest first: a secret inside another
        patterns = [SK_KEY]
        if words:
            alternatives = "|".join(re.escape(word) for word in words)
            patterns.insert(0, re.compile(rf"(?<![{_WORD}])(?:{alternatives})(?![{_WORD}])"))
        self._patterns = tuple(patterns)

    def scrub(self, text: str) -> str:
        for pattern in self._patterns:
            text = pattern.sub(MASK, text)
        return text

    def __call__(self, text: str) -> str:
        return self.scrub(text)
