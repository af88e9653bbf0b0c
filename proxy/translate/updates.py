"""P5.4-P5.7: UpdatePrompt, UpdateSpeak, UpdateThink and UpdateListen as session.update.

UpdateListen (SDK 7.x) has no P5 rule of its own: the listen provider is
Deepgram's speech-to-text, played here by the session's input
transcription, so it is a session.update of `audio.input.transcription`
(the P4 transcription row) acknowledged by ListenUpdated, under the same
rules as the others.

Applied one at a time, in order, never while a response is active (the
session calls `start_next` only then); each is answered by its own message
after the matching `session.updated`, or rejected by an upstream `error`
matched to its wait (by event_id, or by the rule in `waits` when the
upstream names none), or timed out. A change takes effect only once
acknowledged. The queue is bounded: a client that sends updates faster than
the upstream applies them gets `UPDATE_QUEUE_FULL` for the excess.
"""

from __future__ import annotations

from collections import deque

from ..protocol import deepgram as dg
from ..protocol import openai as oa
from .outbox import Outbox
from .endpoint_policy import FunctionHosts
from .settings import (
    FALLBACK_IGNORED,
    InvalidSettings,
    choose_speak,
    choose_think,
    server_functions_from,
    tools_from,
    transcription_from,
)
from .turns import LISTEN, PROMPT, SPEAK, THINK, Applied, Update
from .waits import UPDATE, Wait, Waits

UPDATE_TIMER = "update"

_ACKNOWLEDGEMENTS = {
    PROMPT: dg.PromptUpdated,
    SPEAK: dg.SpeakUpdated,
    THINK: dg.ThinkUpdated,
    LISTEN: dg.ListenUpdated,
}


class LiveUpdates:
    def __init__(
        self,
        out: Outbox,
        waits: Waits,
        applied: Applied,
        *,
        timeout_s: float,
        max_queued: int,
        function_hosts: FunctionHosts = FunctionHosts(),
        transcription_model: str = "gpt-4o-mini-transcribe",
    ) -> None:
        self._out = out
        self._function_hosts = function_hosts
        self._transcription_model = transcription_model
        self.agent_language: str | None = None  # Settings.agent.language, the UpdateListen default
        self._waits = waits
        self._applied = applied
        self._timeout_s = timeout_s
        self._max_queued = max_queued
        self._queue: deque[Update] = deque()
        self._pending: Wait | None = None

    @property
    def pending(self) -> bool:
        return self._pending is not None

    @property
    def queued(self) -> int:
        return len(self._queue)

    def requeue_pending(self) -> None:
        """A renewal: the update in flight was never answered; it is sent again, first, to the new upstream."""
        wait = self._end()
        if wait is not None:
            self._queue.appendleft(wait.subject)

    # --- from the client
    def prompt(self, message: dg.UpdatePrompt) -> None:
        self._enqueue(Update(PROMPT, {}, append_prompt=message.prompt))

    def speak(self, message: dg.UpdateSpeak) -> None:
        voice, ignored, unused = choose_speak(message.speak, "speak")
        if unused:
            self._out.warning(FALLBACK_IGNORED, unused)
        if voice is None:
            # Nothing the upstream could use: say so, and acknowledge the
            # (unchanged) speak configuration so the client is not left waiting.
            self._out.warning_once("VOICE_IGNORED", ignored or "no Realtime voice given")
            self._out.client(dg.SpeakUpdated())
            return
        self._enqueue(Update(SPEAK, {"audio": {"output": {"voice": voice}}}, voice=voice))

    def think(self, message: dg.UpdateThink) -> None:
        think, unused = choose_think(message.think, "think")
        try:
            # A function with an endpoint passes the same allowlist as in Settings.
            server_functions = server_functions_from(think.functions, self._function_hosts, "think")
        except InvalidSettings as error:
            self._out.error("INVALID_MESSAGE", f"UpdateThink: {error}")
            return
        if unused:
            self._out.warning(FALLBACK_IGNORED, unused)
        tools = tools_from(think.functions)
        self._enqueue(
            Update(
                THINK,
                {"tools": list(tools)},
                instructions=think.prompt or "",
                tools=tools,
                server_functions=server_functions,
            )
        )

    def listen(self, message: dg.UpdateListen) -> None:
        transcription = transcription_from(message.listen.provider, self.agent_language, self._transcription_model)
        self._enqueue(Update(LISTEN, {"audio": {"input": {"transcription": transcription}}}, transcription=transcription))

    def _enqueue(self, update: Update) -> None:
        if len(self._queue) >= self._max_queued:
            self._out.error(
                "UPDATE_QUEUE_FULL",
                f"{update.kind} update refused: {self._max_queued} updates are already waiting to be applied",
            )
            return
        self._queue.append(update)

    # --- driven by the session
    def start_next(self, now: float) -> None:
        """Send the next queued update, if none is pending (the caller checks no response is active)."""
        if self._pending is not None or not self._queue:
            return
        update = self._queue.popleft()
        session = {"type": "realtime", **update.session}
        if update.append_prompt is not None:
            # P5.4: appended to the instructions as they are when this update
            # starts, i.e. after every earlier update was applied or rejected
            # (P5.7: a rejected prompt is not carried into the next one).
            base = self._applied.instructions
            update.instructions = f"{base}\n{update.append_prompt}" if base else update.append_prompt
        if update.instructions is not None:
            session["instructions"] = update.instructions
        update.event_id = self._out.new_id("e")
        self._out.upstream(oa.SessionUpdate(event_id=update.event_id, session=session))
        self._pending = self._waits.add(UPDATE, update.event_id, now, update)
        self._out.start_timer(UPDATE_TIMER, now + self._timeout_s)

    def acknowledged(self) -> bool:
        """A later session.updated: the pending update applied. False if none was pending."""
        wait = self._end()
        if wait is None:
            return False
        update: Update = wait.subject
        if update.instructions is not None:
            self._applied.instructions = update.instructions
        if update.tools is not None:
            self._applied.tools = update.tools
        if update.voice is not None:
            self._applied.voice = update.voice
        if update.server_functions is not None:
            self._applied.server_functions = update.server_functions
        if update.transcription is not None:
            self._applied.transcription = update.transcription
        self._out.client(_ACKNOWLEDGEMENTS[update.kind]())
        return True

    def rejected(self, wait: Wait, error: oa.ErrorDetail) -> None:
        """P5.7: rejected; the change is forgotten."""
        if wait is not self._pending:
            return
        self._end()
        self._out.error(error.code or error.type, f"{wait.subject.kind} update rejected: {error.message}")

    def deadline(self) -> None:
        wait = self._end()
        if wait is not None:
            self._out.error("UPDATE_TIMEOUT", f"the upstream neither applied nor rejected the {wait.subject.kind} update in time")

    def _end(self) -> Wait | None:
        wait, self._pending = self._pending, None
        self._waits.discard(wait)
        self._out.cancel_timer(UPDATE_TIMER)
        return wait
