"""Think Live (`Settings.agent.think_live`, `UpdateThink_Live`) on OpenAI Realtime.

Deepgram's Think Live model runs beside the reasoning model: backchannels
("mhmm") while the user talks, presence checks after a silence, frustration
detection, and terms it must not say. OpenAI has no counterpart for most of
it, so the configuration is acknowledged (`ThinkLiveUpdated`) and a
`Warning` (code THINK_LIVE_UNSUPPORTED) names what will not happen.

Presence checks can be done faithfully: after an agent turn, once its audio
has had time to play, a timer waits `presence_check_interval_ms` (the first
wait at least 3 s, as Deepgram floors it) and, if nobody spoke meanwhile,
asks the model for one short line checking that the user is still there; at
most `presence_check_max_count` times in a row, the count starting over
whenever the user speaks. They run only when `presence_check_max_count` is
given and above 0 (Deepgram's own default is not documented).
"""

from __future__ import annotations

import attrs

from ..protocol import deepgram as dg
from .outbox import Outbox
from .turns import AGENT, ResponseRequest

PRESENCE_TIMER = "presence"
THINK_LIVE_UNSUPPORTED = "THINK_LIVE_UNSUPPORTED"
DEFAULT_PRESENCE_INTERVAL_MS = 10_000
FIRST_PRESENCE_FLOOR_S = 3.0  # Deepgram: the first prompt is floored at 3000 ms
PRESENCE_PROMPT = (
    "The user has been silent for a while. In one short sentence, in the language of the "
    "conversation, check whether they are still there. Do not repeat earlier answers."
)


@attrs.define
class PresenceChecks:
    max_count: int
    interval_s: float
    count: int = 0

    def next_wait(self) -> float:
        return max(FIRST_PRESENCE_FLOOR_S, self.interval_s) if self.count == 0 else self.interval_s


def think_live_warning(think_live: dg.ThinkLive) -> str | None:
    """What of this Think Live configuration the proxy cannot do, or None."""
    provider = think_live.provider or dg.ThinkLiveProvider()
    missing = []
    # An omitted value means Deepgram's default, which has the feature on.
    if provider.agent_backchannel_sensitivity is None or provider.agent_backchannel_sensitivity > 0:
        missing.append("agent backchannels (agent_backchannel_sensitivity)")
    if provider.frustration_max_count is None or provider.frustration_max_count > 0:
        missing.append("frustration detection (FrustrationDetected is never sent)")
    if provider.restricted_terms:
        missing.append("restricted_terms")
    if provider.presence_check_max_count is None:
        missing.append("presence checks without presence_check_max_count")
    if not missing:
        return None
    return "Think Live on OpenAI Realtime: not supported: " + "; ".join(missing)


def presence_from(think_live: dg.ThinkLive | None) -> PresenceChecks | None:
    provider = think_live.provider if think_live is not None else None
    if provider is None or not provider.presence_check_max_count or provider.presence_check_max_count < 0:
        return None
    interval_ms = provider.presence_check_interval_ms or DEFAULT_PRESENCE_INTERVAL_MS
    return PresenceChecks(max_count=provider.presence_check_max_count, interval_s=max(0.0, interval_ms) / 1000)


class ThinkLive:
    """Warnings for what cannot be done, and the presence-check timer for what can."""

    def __init__(self, out: Outbox) -> None:
        self._out = out
        self.presence: PresenceChecks | None = None

    def configure(self, think_live: dg.ThinkLive) -> None:
        """Settings.agent.think_live or UpdateThink_Live: warn, and (re)configure presence checks."""
        warning = think_live_warning(think_live)
        if warning:
            self._out.warning(THINK_LIVE_UNSUPPORTED, warning)
        self.presence = presence_from(think_live)
        self._out.cancel_timer(PRESENCE_TIMER)

    def update(self, message: dg.UpdateThinkLive) -> None:
        # Nothing goes upstream, so there is nothing to wait for (P5.7 is about session.update).
        self.configure(message.think_live)
        self._out.client(dg.ThinkLiveUpdated())

    def user_active(self) -> None:
        """The user spoke or wrote: no presence check now, and the count starts over."""
        if self.presence is not None:
            self.presence.count = 0
            self._out.cancel_timer(PRESENCE_TIMER)

    def agent_speaking(self) -> None:
        self._out.cancel_timer(PRESENCE_TIMER)

    def agent_turn_ended(self, playback_ends: float) -> None:
        presence = self.presence
        if presence is not None and presence.count < presence.max_count:
            self._out.start_timer(PRESENCE_TIMER, playback_ends + presence.next_wait())

    def due(self, *, quiet: bool) -> ResponseRequest | None:
        """The timer passed: the response to ask for, if the conversation is still `quiet`."""
        presence = self.presence
        if presence is None or presence.count >= presence.max_count or not quiet:
            return None  # the conversation moved on; the next agent turn re-arms it
        presence.count += 1
        return ResponseRequest(AGENT, instructions=PRESENCE_PROMPT, message="(presence check)")
