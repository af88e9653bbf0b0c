"""ForceEndTurn: the client says the user's turn is over, now.

With OPENAI_PROXY_TURN_DETECTION=none nothing else ever ends a spoken turn:
the proxy appends audio and the upstream waits. ForceEndTurn is then the
push-to-talk release: `input_audio_buffer.commit`, then a `response.create`
(queued behind an active response, never two at once, P5.1). The turn's
latency clock starts when that response is asked for (P6.4).

With server or semantic VAD the upstream ends turns itself; ForceEndTurn
then acts only while the upstream says the user is speaking (a commit at
any other time would only commit silence and start a second response).
A part of `Session`.
"""

from __future__ import annotations

from ..protocol import deepgram as dg
from ..protocol import openai as oa
from .turns import USER, ResponseRequest

# The upstream refuses to commit less than 100 ms of audio.
MIN_COMMIT_MS = 100
TURN_TOO_SHORT = "TURN_TOO_SHORT"


class TurnControl:
    def _force_end_turn(self, now: float) -> None:
        manual = self.options.turn_detection == "none"
        if not manual and not self._user_speaking:
            self.log.debug("ForceEndTurn while the user is not speaking: nothing to end")
            return
        if self._uncommitted_audio_bytes == 0:
            self.log.debug("ForceEndTurn with no audio since the last turn: nothing to end")
            return
        if self._uncommitted_audio_bytes < MIN_COMMIT_MS * self._audio_in.format.upstream_bytes_per_ms:
            # Kept, not dropped: it becomes the start of the next turn.
            self._client(
                dg.Warning(
                    description=f"ForceEndTurn: less than {MIN_COMMIT_MS} ms of audio since the last turn; the turn goes on",
                    code=TURN_TOO_SHORT,
                )
            )
            return
        self._upstream(oa.InputAudioBufferCommit(event_id=self._new_id("e")))
        self._uncommitted_audio_bytes = 0
        self._user_speaking = False
        self._speech_stopped_at = now
        self._user_active()
        self._request_response(ResponseRequest(USER), now)
