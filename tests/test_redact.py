"""The secret scrubber (P1.5): pure, whole words, and any `sk-` key."""

from __future__ import annotations

import pytest

from proxy.redact import MASK, Redactor

# Made up, and built at run time so secret scanners do not take them for keys.
KEY = "sk-" + "proj-" + "Abc123def456ghi789jkl012"
UNKNOWN_KEY = "sk-" + "live0123456789abcdefXYZ"
TOKEN = "client-token-0123456789abcdef"


def test_p1_5_masks_the_given_secrets_and_keeps_the_rest():
    redactor = Redactor([KEY, TOKEN])
    assert redactor.scrub(f"Incorrect API key provided: {KEY}.") == f"Incorrect API key provided: {MASK}."
    assert redactor.scrub(f"token={TOKEN}; again {TOKEN}") == f"token={MASK}; again {MASK}"
    assert redactor.scrub("nothing secret here") == "nothing secret here"


def test_p1_5_masks_any_openai_shaped_key_it_was_not_given():
    assert Redactor().scrub(f"key {UNKNOWN_KEY} was refused") == f"key {MASK} was refused"
    # Short "sk-" words are ordinary text.
    assert Redactor().scrub("the sk-1 field") == "the sk-1 field"


@pytest.mark.parametrize(
    "text",
    ["2026-12-01T10:11:12", "port 8081 and 18", "id a1b"],
)
def test_p1_5_a_secret_is_masked_only_as_a_whole_word(text):
    """A token that is also a common substring must not mangle unrelated text."""
    assert Redactor(["1"]).scrub(text) == text


def test_p1_5_a_secret_next_to_punctuation_is_still_masked():
    redactor = Redactor(["1"])
    assert redactor.scrub("token 1, or (1)") == f"token {MASK}, or ({MASK})"


def test_p1_5_the_longest_secret_wins_when_one_contains_another():
    redactor = Redactor(["abcdefghijklmnop", "abcdefghijklmnop-qrst"])
    assert redactor.scrub("x abcdefghijklmnop-qrst y") == f"x {MASK} y"


def test_empty_secrets_are_ignored():
    assert Redactor(["", ""]).scrub("plain") == "plain"
