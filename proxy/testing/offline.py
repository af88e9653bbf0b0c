"""The offline agent: what the fake upstream says when nobody scripts it.

Used by `python -m proxy --demo` and `python -m proxy.testing`. It answers
every user turn, typed or spoken, with a short reply and "speech" made here:
a buzz with a falling pitch, one syllable per word, PCM16 mono at 24 kHz.
It understands nothing: a typed message is echoed, a spoken one is
described by its length (the fake has no speech recognition), and every
reply says that it comes from the offline demo.
"""

from __future__ import annotations

import zlib
from typing import Any, Protocol

import numpy as np

RATE = 24000
# The real service sends audio faster than it plays; so does the fake, at
# 100 ms per delta and about five times real time, so that a barge-in (P7)
# can still land in the middle of a reply.
DELTA_BYTES = 2 * RATE // 10
DELTA_INTERVAL_S = 0.02
# A reply is short whatever it says: a demo, not an audiobook.
MAX_SYLLABLES = 12
ECHO_CHARS = 80

NOTICE = "This is the offline demo, so nothing is understood; set OPENAI_API_KEY for a real conversation."


def spoken_placeholder(speech_ms: int) -> str:
    """The user transcript of a spoken turn: the fake recognises no words, so it says so."""
    return f"(spoken turn of {speech_ms / 1000:.1f} s)"


def reply_text(user_text: str | None, speech_ms: int | None = None, instructed: bool = False) -> str:
    """What the offline agent says to the last user turn."""
    if instructed:
        return "An agent message, spoken by the offline demo."
    if speech_ms is not None:
        return f"I heard you speak for {speech_ms / 1000:.1f} seconds. {NOTICE}"
    if user_text:
        echo = user_text if len(user_text) <= ECHO_CHARS else user_text[: ECHO_CHARS - 3] + "..."
        return f'You said: "{echo}". {NOTICE}'
    return f"Hello. {NOTICE}"


def synthesize(text: str, rate: int = RATE) -> bytes:
    """A voice-like waveform for `text` (PCM16 LE mono at `rate`): deterministic, no model.

    Each word is one syllable: a few harmonics of a pitch that falls over the
    sentence, shaped by a raised-cosine envelope, with a short gap between
    words. The words' letters pick small pitch steps, so different replies
    sound different.
    """
    words = text.split()[:MAX_SYLLABLES] or ["..."]
    pieces = []
    gap = np.zeros(int(0.05 * rate), dtype=np.float32)
    for index, word in enumerate(words):
        length = int(rate * min(0.32, 0.10 + 0.025 * len(word)))
        t = np.arange(length, dtype=np.float32) / rate
        declination = 1.0 - 0.25 * index / max(1, len(words) - 1)
        pitch = (150.0 + 25.0 * (zlib.crc32(word.encode()) % 5)) * declination
        glide = pitch * (1.0 + 0.08 * np.sin(np.pi * t / t[-1])) if length > 1 else np.full(length, pitch)
        phase = 2 * np.pi * np.cumsum(glide) / rate
        tone = sum(np.sin(k * phase) / k for k in (1, 2, 3, 4)).astype(np.float32)
        envelope = (0.5 - 0.5 * np.cos(2 * np.pi * np.arange(length) / max(1, length - 1))).astype(np.float32)
        pieces += [0.25 * tone * envelope, gap]
    signal = np.concatenate(pieces)
    return (np.clip(signal, -1.0, 1.0) * 32767).astype("<i2").tobytes()


class Turn(Protocol):
    text: str | None
    speech_ms: int | None


class Replying(Protocol):
    """What the agent needs of a fake connection (FakeConnection; a protocol keeps the imports one way)."""

    def last_user_turn(self) -> Turn | None: ...
    async def play_response(self, *, transcript: str, audio: bytes, chunk: int,
                            create: dict[str, Any] | None, interval: float) -> str: ...


async def offline_reply(connection: Replying, create: dict[str, Any] | None) -> None:
    """A responder for `FakeRealtime`: a spoken reply to the last user turn."""
    instructed = bool(((create or {}).get("response") or {}).get("instructions"))
    turn = connection.last_user_turn()
    text = reply_text(turn.text, turn.speech_ms, instructed) if turn else reply_text(None, None, instructed)
    await connection.play_response(
        transcript=text, audio=synthesize(text), chunk=DELTA_BYTES, create=create, interval=DELTA_INTERVAL_S
    )
