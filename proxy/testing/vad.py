"""A small energy-based voice activity detector for the fake upstream (sans-I/O).

The real service's server VAD is a model; the fake only needs to react to
a microphone the way that VAD does on the wire: `speech_started` once the
audio has been loud for a moment, `speech_stopped` after a stretch of quiet.
Fed PCM16 mono at 24 kHz (what the proxy always sends upstream for linear16,
P4), in frames of any size; it returns what it detected and never touches a
clock: time is the audio's own position, as `audio_start_ms` and
`audio_end_ms` are in the GA events.
"""

from __future__ import annotations

import attrs
import numpy as np

RATE = 24000
WINDOW_MS = 10
WINDOW_SAMPLES = RATE * WINDOW_MS // 1000

# Root-mean-square level, as a fraction of full scale, above which a 10 ms
# window counts as voiced: about -40 dBFS, well above a quiet room through a
# browser's noise suppression and well below speech at a normal distance.
DEFAULT_THRESHOLD = 0.01
# The GA defaults of `server_vad` (prefix_padding_ms, silence_duration_ms).
DEFAULT_PREFIX_PADDING_MS = 300
DEFAULT_SILENCE_DURATION_MS = 500
# A click or a cough shorter than this is not a turn.
MIN_SPEECH_MS = 100


@attrs.frozen
class SpeechStarted:
    audio_start_ms: int  # where the turn's audio starts, prefix padding included


@attrs.frozen
class SpeechStopped:
    audio_end_ms: int  # the end of the last voiced window
    speech_ms: int  # from the first to the end of the last voiced window


@attrs.define
class EnergyVad:
    """Turns in a stream of PCM16 at 24 kHz, by level. `feed` returns what it found."""

    threshold: float = DEFAULT_THRESHOLD
    prefix_padding_ms: int = DEFAULT_PREFIX_PADDING_MS
    silence_duration_ms: int = DEFAULT_SILENCE_DURATION_MS
    min_speech_ms: int = MIN_SPEECH_MS
    speaking: bool = False
    _position_ms: int = 0  # audio consumed so far
    _pending: bytearray = attrs.field(factory=bytearray)  # less than one window, waiting for the rest
    _voiced_since: int | None = None  # start of the current run of voiced windows
    _onset_ms: int = 0  # first voiced window of the turn
    _last_voiced_end: int = 0

    def feed(self, pcm: bytes) -> list[SpeechStarted | SpeechStopped]:
        self._pending += pcm
        usable = len(self._pending) // (2 * WINDOW_SAMPLES) * (2 * WINDOW_SAMPLES)
        if not usable:
            return []
        samples = np.frombuffer(bytes(self._pending[:usable]), dtype="<i2").astype(np.float32) / 32768.0
        del self._pending[:usable]
        levels = np.sqrt(np.mean(samples.reshape(-1, WINDOW_SAMPLES) ** 2, axis=1))
        events: list[SpeechStarted | SpeechStopped] = []
        for level in levels:
            event = self._window(bool(level >= self.threshold))
            if event is not None:
                events.append(event)
        return events

    def _window(self, voiced: bool) -> SpeechStarted | SpeechStopped | None:
        start, end = self._position_ms, self._position_ms + WINDOW_MS
        self._position_ms = end
        if voiced:
            self._last_voiced_end = end
            if self._voiced_since is None:
                self._voiced_since = start
        elif not self.speaking:
            self._voiced_since = None  # a blip shorter than min_speech_ms
        if not self.speaking:
            if self._voiced_since is not None and end - self._voiced_since >= self.min_speech_ms:
                self.speaking = True
                self._onset_ms = self._voiced_since
                return SpeechStarted(max(0, self._voiced_since - self.prefix_padding_ms))
            return None
        if end - self._last_voiced_end >= self.silence_duration_ms:
            self.speaking = False
            self._voiced_since = None
            return SpeechStopped(self._last_voiced_end, self._last_voiced_end - self._onset_ms)
        return None
