"""UpdateListen: a new transcription model, language or key terms mid-session.

The listen provider is Deepgram's speech-to-text; on OpenAI the session's
input transcription plays that part, so the update becomes a
`session.update` of `audio.input.transcription` (the P4 transcription row)
and `ListenUpdated` acknowledges it, under the P5.7 rules of every live
update: one at a time, in order, never during a response, rejected by an
upstream error naming it, timed out after OPENAI_PROXY_UPDATE_TIMEOUT_S.
A part of `Session`.
"""

from __future__ import annotations

from ..protocol import deepgram as dg
from .settings import transcription_from
from .turns import LISTEN, Update


class ListenUpdates:
    def _update_listen(self, message: dg.UpdateListen, now: float) -> None:
        transcription = transcription_from(
            message.listen.provider, self._agent_language, self.options.transcription_model
        )
        self._queue_update(Update(LISTEN, {"audio": {"input": {"transcription": transcription}}}), now)
