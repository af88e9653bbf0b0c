"""P3 and P2.2: from the first Settings to a ready session.

The first valid Settings becomes one session.update (P3.1, P3.7); until the
first session.updated, client frames are held within one budget (P2.2,
P3.6); then SettingsApplied, context, greeting and the held frames, in that
order (P3.3-P3.5). A part of `Session`, whose state it uses.
"""

from __future__ import annotations

from collections import deque
from typing import Any

from ..audio import InboundStream
from ..protocol import deepgram as dg
from ..protocol import openai as oa
from .settings import InvalidSettings, plan_session
from .turns import GREETING, ResponseRequest

# P5.3, P3.5: how an injected agent message (or a spoken greeting) is said.
SAY_VERBATIM = (
    "Say exactly the following message to the user, word for word, "
    "adding nothing before or after it:\n{message}"
)


class SessionSetup:
    def _hold(self, message: Any, size: int) -> None:
        """P2.2/P3.6: hold until ready, bounded; overflow closes with 1013."""
        if (
            len(self._held) >= self.options.max_held_frames
            or self._held_bytes + size > self.options.max_held_bytes
        ):
            self._error(
                "CLIENT_BUFFER_FULL",
                f"more than {self.options.max_held_frames} frames or {self.options.max_held_bytes} bytes "
                "arrived before the session was ready",
            )
            self._close(1013, "client buffer full")
            return
        self._held.append((message, size))
        self._held_bytes += size

    def _on_first_settings(self, settings: dg.Settings) -> None:
        """P3.1/P3.7: the first valid Settings becomes one session.update."""
        try:
            plan = plan_session(
                settings,
                turn_detection=self.options.turn_detection,
                transcription_model=self.options.transcription_model,
                function_hosts=self.options.function_hosts,
            )
        except InvalidSettings as error:
            self._error("INVALID_SETTINGS", str(error))
            return
        self._plan = plan
        self._audio_in = InboundStream(plan.input_format)
        self._output_format = plan.output_format
        if plan.voice_ignored:
            self._client(dg.Warning(description=plan.voice_ignored, code="VOICE_IGNORED"))
        for code, description in plan.warnings:
            self._client(dg.Warning(description=description, code=code))
        if plan.think_live is not None:
            self._apply_think_live(plan.think_live)
        self._agent_language = settings.agent.language if settings.agent is not None else None
        self._settings_event_id = self._upstream_session_update(plan.session)

    def _become_ready(self, now: float) -> None:
        """P3.3: SettingsApplied, context, greeting, then what was held."""
        plan = self._plan
        assert plan is not None
        self.ready = True
        self._settings_event_id = None
        self._instructions = plan.instructions
        self._tools = plan.tools
        self._voice = plan.voice
        self._server_functions = plan.server_functions
        self._report_history = plan.report_history
        self._client(dg.SettingsApplied())
        for entry in plan.history:  # P3.4
            for item in _history_items(entry):
                self._upstream(oa.ConversationItemCreate(event_id=self._new_id("e"), item=item))
        if plan.greeting:  # P3.5
            self._upstream(
                oa.ConversationItemCreate(
                    event_id=self._new_id("e"),
                    item=oa.MessageItem(
                        role="assistant", content=(oa.ContentPart(type="output_text", text=plan.greeting),)
                    ),
                )
            )
            self._client(dg.ConversationText(role="assistant", content=plan.greeting))
            if self.options.greeting == "speak":
                self._request_response(
                    ResponseRequest(
                        GREETING,
                        instructions=SAY_VERBATIM.format(message=plan.greeting),
                        out_of_band=True,
                        message=plan.greeting,
                    ),
                    now,
                )
        held, self._held = self._held, deque()
        self._held_bytes = 0
        for message, _size in held:
            if self.closed:
                break
            self._dispatch(message, now)


def _history_items(entry: dg.HistoryMessage) -> list[oa.Item]:
    """P3.4: one context entry -> the conversation items it stands for."""
    if entry.function_calls:
        items: list[oa.Item] = []
        for call in entry.function_calls:
            items.append(oa.FunctionCallItem(call_id=call.id, name=call.name, arguments=call.arguments))
            items.append(oa.FunctionCallOutputItem(call_id=call.id, output=call.response))
        return items
    if entry.content is None:
        return []
    part_type = "output_text" if entry.role == "assistant" else "input_text"
    role = "assistant" if entry.role == "assistant" else "user"
    return [oa.MessageItem(role=role, content=(oa.ContentPart(type=part_type, text=entry.content),))]
