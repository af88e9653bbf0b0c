"""P5.4-P5.7: UpdatePrompt, UpdateSpeak and UpdateThink as session.update.

Applied one at a time, in order, never while a response is active; each is
acknowledged by its own message after the matching `session.updated`, or
rejected by an upstream `error` naming its `event_id`, or timed out. A
change takes effect only once acknowledged. A part of `Session`, whose state
(`_updates`, `_pending_update`) it uses.
"""

from __future__ import annotations

from ..protocol import deepgram as dg
from ..protocol import openai as oa
from .actions import CancelTimer, StartTimer
from .settings import InvalidSettings, choose_speak, choose_think, server_functions_from, tools_from
from .turns import LISTEN, PROMPT, SPEAK, THINK, Update

UPDATE_TIMER = "update"


class LiveUpdates:
    def _update_speak(self, message: dg.UpdateSpeak, now: float) -> None:
        voice, ignored, unused = choose_speak(message.speak, "speak")
        if unused:
            self._client(dg.Warning(description=unused, code="FALLBACK_IGNORED"))
        if voice is None:
            # Nothing the upstream could use: say so, and acknowledge the
            # (unchanged) speak configuration so the client is not left waiting.
            self._client(dg.Warning(description=ignored or "no Realtime voice given", code="VOICE_IGNORED"))
            self._client(dg.SpeakUpdated())
            return
        self._queue_update(Update(SPEAK, {"audio": {"output": {"voice": voice}}}, voice=voice), now)

    def _update_think(self, message: dg.UpdateThink, now: float) -> None:
        think, unused = choose_think(message.think, "think")
        try:
            server_functions = server_functions_from(think.functions, self.options.function_hosts, "think")
        except InvalidSettings as error:
            self._error("INVALID_MESSAGE", f"UpdateThink: {error}")
            return
        if unused:
            self._client(dg.Warning(description=unused, code="FALLBACK_IGNORED"))
        tools = tools_from(think.functions)
        self._queue_update(
            Update(
                THINK,
                {"tools": list(tools)},
                instructions=think.prompt or "",
                tools=tools,
                server_functions=server_functions,
            ),
            now,
        )

    def _queue_update(self, update: Update, now: float) -> None:
        self._updates.append(update)
        self._pump(now)

    def _start_update(self, update: Update, now: float) -> None:
        session = {"type": "realtime", **update.session}
        if update.append_prompt is not None:
            # P5.4: appended to the instructions as they are when this update
            # starts, i.e. after every earlier update was applied or rejected
            # (P5.7: a rejected prompt is not carried into the next one).
            base = self._instructions
            update.instructions = f"{base}\n{update.append_prompt}" if base else update.append_prompt
        if update.instructions is not None:
            session["instructions"] = update.instructions
        update.event_id = self._upstream_session_update(session)
        self._pending_update = update
        self._out.append(StartTimer(UPDATE_TIMER, now + self.options.update_timeout_s))

    def _finish_update(self, now: float, *, error: oa.ErrorDetail | None = None, timed_out: bool = False) -> None:
        update = self._pending_update
        assert update is not None
        self._pending_update = None
        self._out.append(CancelTimer(UPDATE_TIMER))
        if timed_out:
            self._error("UPDATE_TIMEOUT", f"the upstream neither applied nor rejected the {update.kind} update in time")
        elif error is not None:
            # P5.7: rejected; the change is forgotten.
            self._error(error.code or error.type, f"{update.kind} update rejected: {error.message}")
        else:
            if update.instructions is not None:
                self._instructions = update.instructions
            if update.tools is not None:
                self._tools = update.tools
            if update.voice is not None:
                self._voice = update.voice
            if update.server_functions is not None:
                self._server_functions = update.server_functions
            acknowledgement = {
                PROMPT: dg.PromptUpdated,
                SPEAK: dg.SpeakUpdated,
                THINK: dg.ThinkUpdated,
                LISTEN: dg.ListenUpdated,
            }[update.kind]
            self._client(acknowledgement())
        self._pump(now)

    def _update_deadline(self, now: float) -> None:
        if self._pending_update is not None:
            self._finish_update(now, timed_out=True)
