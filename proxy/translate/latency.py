"""LatencyReport: the figures of one agent turn, measured on the proxy's clock.

Deepgram reports, after each agent turn, how long each stage took. The proxy
sees only the upstream's events, so it reports what those events let it
measure and leaves the rest out (every field of LatencyReport is optional):

- `stt_latency`: the user's speech stopped -> its transcript arrived, when
  the transcript of the turn that caused the response came before the
  response ended;
- `ttt_token_latency`: turn end (P6.4) -> the first output of any kind;
- `ttt_text_latency`: turn end -> the first text or transcript delta;
- `ttt_tool_latency`: turn end -> the first function-call arguments delta;
- `tts_latency`: first text -> first audio (the Realtime model speaks as it
  writes, so this is often 0);
- `total_latency`: turn end -> first audio, as in AgentStartedSpeaking.

`ttt_thinking_latency` is never set: the Realtime API streams no reasoning.
"""

from __future__ import annotations

import attrs

from ..protocol import deepgram as dg


def _seconds(start: float | None, end: float | None) -> float | None:
    if start is None or end is None:
        return None
    return round(max(0.0, end - start), 4)


@attrs.define
class TurnLatency:
    """One response's clock readings; fed by the session, read once at response.done."""

    turn_end: float
    speech_stopped_at: float | None = None  # a spoken turn only
    transcript_at: float | None = None
    first_token_at: float | None = None
    first_text_at: float | None = None
    first_tool_at: float | None = None
    first_audio_at: float | None = None

    def token(self, now: float) -> None:
        if self.first_token_at is None:
            self.first_token_at = now

    def text(self, now: float) -> None:
        self.token(now)
        if self.first_text_at is None:
            self.first_text_at = now

    def tool(self, now: float) -> None:
        self.token(now)
        if self.first_tool_at is None:
            self.first_tool_at = now

    def audio(self, now: float) -> None:
        self.token(now)
        if self.first_audio_at is None:
            self.first_audio_at = now

    def report(self) -> dg.LatencyReport:
        return dg.LatencyReport(
            stt_latency=_seconds(self.speech_stopped_at, self.transcript_at),
            ttt_token_latency=_seconds(self.turn_end, self.first_token_at),
            ttt_text_latency=_seconds(self.turn_end, self.first_text_at),
            ttt_tool_latency=_seconds(self.turn_end, self.first_tool_at),
            # Audio can lead its transcript: then speech followed no text at all.
            tts_latency=_seconds(self.first_text_at or self.first_audio_at, self.first_audio_at),
            total_latency=_seconds(self.turn_end, self.first_audio_at),
        )


class TurnLatencies:
    """The session's part: one TurnLatency per active response, reported when it ends."""

    def __init__(self) -> None:
        self._turn: TurnLatency | None = None
        self._transcript_at: float | None = None  # the last user transcript

    def response_started(self, turn_end: float, *, spoken: bool, speech_stopped_at: float | None) -> None:
        self._turn = turn = TurnLatency(turn_end=turn_end)
        if spoken and speech_stopped_at is not None:
            turn.speech_stopped_at = speech_stopped_at
            if self._transcript_at is not None and self._transcript_at >= speech_stopped_at:
                turn.transcript_at = self._transcript_at

    def transcript(self, now: float) -> None:
        self._transcript_at = now
        turn = self._turn
        if turn is not None and turn.speech_stopped_at is not None and turn.transcript_at is None:
            turn.transcript_at = now

    def text(self, now: float) -> None:
        if self._turn is not None:
            self._turn.text(now)

    def tool(self, now: float) -> None:
        if self._turn is not None:
            self._turn.tool(now)

    def audio(self, now: float) -> None:
        if self._turn is not None:
            self._turn.audio(now)

    def response_ended(self) -> dg.LatencyReport | None:
        """The report of the turn that just ended; None when it produced nothing (no turn at all)."""
        turn, self._turn = self._turn, None
        if turn is None or turn.first_token_at is None:
            return None
        return turn.report()
