"""P3 and P2.2: from the first Settings to a ready session.

The first valid Settings becomes one session.update (P3.1, P3.7); until the
first session.updated, client frames are held within one budget (P2.2,
P3.6). The phase moves along `SETUP_TRANSITIONS`: awaiting Settings ->
Settings sent -> ready, back to awaiting Settings when the upstream rejects
the first session.update (the client may send a corrected one), closed from
anywhere. What "ready" then sends (SettingsApplied, context, greeting, the
held frames; P3.3-P3.5) is `Session`'s, which owns the other parts.
"""

from __future__ import annotations

from collections import deque
from typing import Any

from ..protocol import deepgram as dg
from ..protocol import openai as oa
from .outbox import Outbox
from .endpoint_policy import FunctionHosts
from .settings import InvalidSettings, SessionPlan, plan_session
from .states import SETUP_TRANSITIONS, Machine, SetupPhase
from .waits import SETTINGS, Waits

# P5.3, P3.5: how an injected agent message (or a spoken greeting) is said.
SAY_VERBATIM = (
    "Say exactly the following message to the user, word for word, "
    "adding nothing before or after it:\n{message}"
)


class Setup:
    """The setup phase, the plan of the first Settings, and the hold."""

    def __init__(self, out: Outbox, waits: Waits, *, max_held_frames: int, max_held_bytes: int,
                 turn_detection: str, transcription_model: str, function_hosts: FunctionHosts = FunctionHosts()) -> None:
        self._function_hosts = function_hosts
        self._out = out
        self._waits = waits
        self._machine = Machine(SetupPhase.AWAITING_SETTINGS, SETUP_TRANSITIONS)
        self._max_frames = max_held_frames
        self._max_bytes = max_held_bytes
        self._turn_detection = turn_detection
        self._transcription_model = transcription_model
        self.plan: SessionPlan | None = None
        # P2.2/P3.6: one budget for everything held until ready.
        self._held: deque[Any] = deque()
        self._held_bytes = 0

    @property
    def phase(self) -> SetupPhase:
        return self._machine.phase

    @property
    def ready(self) -> bool:
        return self._machine.phase is SetupPhase.READY

    def settings(self, settings: dg.Settings, now: float) -> None:
        """P3.1/P3.7: the first valid Settings becomes one session.update."""
        try:
            plan = plan_session(
                settings,
                turn_detection=self._turn_detection,
                transcription_model=self._transcription_model,
                function_hosts=self._function_hosts,
            )
        except InvalidSettings as error:
            self._out.error("INVALID_SETTINGS", str(error))
            return
        self.plan = plan
        if plan.voice_ignored:
            self._out.warning_once("VOICE_IGNORED", plan.voice_ignored)
        for code, description in plan.warnings:
            self._out.warning(code, description)
        event_id = self._out.new_id("e")
        self._out.upstream(oa.SessionUpdate(event_id=event_id, session=plan.session))
        self._waits.add(SETTINGS, event_id, now)
        self._machine.move(SetupPhase.SETTINGS_SENT)

    def hold(self, message: Any, size: int) -> None:
        """P2.2/P3.6: hold until ready, bounded; overflow closes with 1013."""
        if len(self._held) >= self._max_frames or self._held_bytes + size > self._max_bytes:
            self._out.error(
                "CLIENT_BUFFER_FULL",
                f"more than {self._max_frames} frames or {self._max_bytes} bytes arrived before the session was ready",
            )
            self.close()
            self._out.close(1013, "client buffer full")
            return
        self._held.append(message)
        self._held_bytes += size

    def accepted(self) -> tuple[SessionPlan, list[Any]]:
        """The first session.updated: ready; returns the plan and what was held, in order."""
        assert self.plan is not None
        self._waits.discard(self._waits.first(SETTINGS))
        self._machine.move(SetupPhase.READY)
        held, self._held = list(self._held), deque()
        self._held_bytes = 0
        return self.plan, held

    def rejected(self, error: oa.ErrorDetail) -> None:
        """The first session.update was refused: wait for a corrected Settings (P3.7)."""
        self.plan = None
        self._machine.move(SetupPhase.AWAITING_SETTINGS)
        self._out.error(error.code or error.type, f"Settings rejected by the upstream: {error.message}")

    def renewing(self) -> None:
        """A new upstream replaces the old one: hold what the client sends until it is ready."""
        self._machine.move(SetupPhase.RENEWING)

    def renewed(self) -> list[Any]:
        """The new upstream is configured: ready again; returns what was held, in order."""
        self._machine.move(SetupPhase.READY)
        held, self._held = list(self._held), deque()
        self._held_bytes = 0
        return held

    def close(self) -> None:
        self._machine.move(SetupPhase.CLOSED)


def history_items(entry: dg.HistoryMessage) -> list[oa.Item]:
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
