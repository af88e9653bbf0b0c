"""ForceEndTurn: the client says the user's turn is over, now.

With OPENAI_PROXY_TURN_DETECTION=none nothing else ever ends a spoken turn:
the proxy appends audio and the upstream waits. ForceEndTurn is then the
push-to-talk release: `input_audio_buffer.commit`, then a `response.create`
(queued behind an active response, never two at once, P5.1). The turn's
latency clock starts when that response is asked for (P6.4).

With server or semantic VAD the upstream ends turns itself; ForceEndTurn
then acts only while the upstream says the user is speaking (a commit at
any other time would only commit silence and start a second response).
"""

from __future__ import annotations

import logging

from ..protocol import openai as oa
from .outbox import Outbox

# The upstream refuses to commit less than 100 ms of audio.
MIN_COMMIT_MS = 100
TURN_TOO_SHORT = "TURN_TOO_SHORT"


class TurnControl:
    def __init__(self, out: Outbox, log: logging.LoggerAdapter, *, turn_detection: str) -> None:
        self._out = out
        self._log = log
        self._manual = turn_detection == "none"
        self._uncommitted_bytes = 0  # upstream-format audio appended since the last commit
        # Our commits not yet confirmed: their `committed` must not zero audio
        # that arrived after them (the next turn's start).
        self._own_commits = 0

    @property
    def holding_turn(self) -> bool:
        """Push-to-talk: audio came since the last commit, so the user is mid-turn."""
        return self._manual and self._uncommitted_bytes > 0

    def appended(self, size: int) -> None:
        self._uncommitted_bytes += size

    def committed(self) -> None:
        """The upstream's `input_audio_buffer.committed`: its VAD's commit, or the echo of ours."""
        if self._own_commits:
            self._own_commits -= 1
            return
        self._uncommitted_bytes = 0

    def cleared(self) -> None:
        self._uncommitted_bytes = 0

    def renewed(self) -> None:
        """A new upstream (README "Session renewal"): its buffer is empty and it owes no confirmation."""
        self._uncommitted_bytes = 0
        self._own_commits = 0

    def force_end(self, *, user_speaking: bool, bytes_per_ms: int) -> bool:
        """ForceEndTurn; True when the buffer was committed and the turn's response is due."""
        if not self._manual and not user_speaking:
            self._log.debug("ForceEndTurn while the user is not speaking: nothing to end")
            return False
        if self._uncommitted_bytes == 0:
            self._log.debug("ForceEndTurn with no audio since the last turn: nothing to end")
            return False
        if self._uncommitted_bytes < MIN_COMMIT_MS * bytes_per_ms:
            # Kept, not dropped: it becomes the start of the next turn.
            self._out.warning(
                TURN_TOO_SHORT, f"ForceEndTurn: less than {MIN_COMMIT_MS} ms of audio since the last turn; the turn goes on"
            )
            return False
        self._out.upstream(oa.InputAudioBufferCommit(event_id=self._out.new_id("e")))
        self._uncommitted_bytes = 0
        self._own_commits += 1
        return True
