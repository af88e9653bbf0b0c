"""`__customToThinkProvider` and `__customFromThinkProvider`: raw OpenAI events.

Deepgram lets a client talk to its think provider directly. Here the think
provider is the OpenAI Realtime session, so:

- a client's `__customToThinkProvider.content` is sent upstream as one GA
  client event, if it is a JSON object whose `type` is a GA client event
  type (and, when the operator set OPENAI_PROXY_CUSTOM_EVENT_TYPES, one of
  those); its `event_id` is replaced by the proxy's own (P1.6), so an
  upstream `error` about it comes back to the client as an `Error`;
- with OPENAI_PROXY_FORWARD_UNTRANSLATED on, every upstream event the proxy
  has no translation for reaches the client as
  `__customFromThinkProvider{content: <the event>}`.

The proxy does not track what such an event does (a client's own
`response.create` is seen as one the upstream started); that is the price
of the escape hatch, and why operators can narrow it.
"""

from __future__ import annotations

from typing import Any

from ..protocol import deepgram as dg
from ..protocol import openai as oa
from .outbox import Outbox

CUSTOM_EVENT_REFUSED = "INVALID_MESSAGE"


class CustomEvents:
    def __init__(self, out: Outbox, *, allowed: tuple[str, ...], forward_untranslated: bool) -> None:
        self._out = out
        self._allowed = frozenset(allowed)
        self._forward = forward_untranslated

    def to_upstream(self, message: dg.CustomToThinkProvider) -> None:
        content = message.content
        if not isinstance(content, dict):
            self._out.error(CUSTOM_EVENT_REFUSED, "__customToThinkProvider: content must be an OpenAI Realtime client event object")
            return
        event_type = content.get("type")
        if not isinstance(event_type, str) or event_type not in oa.CLIENT_EVENT_TYPES:
            self._out.error(
                CUSTOM_EVENT_REFUSED,
                f"__customToThinkProvider: content.type {event_type!r} is not an OpenAI Realtime client event type",
            )
            return
        if self._allowed and event_type not in self._allowed:
            self._out.error(
                CUSTOM_EVENT_REFUSED,
                f"__customToThinkProvider: {event_type} is not allowed here (OPENAI_PROXY_CUSTOM_EVENT_TYPES)",
            )
            return
        body = {key: value for key, value in content.items() if key != "event_id"}
        self._out.upstream(oa.CustomClientEvent(event_id=self._out.new_id("e"), body=body))

    def from_upstream(self, event: dict[str, Any]) -> None:
        """An upstream event with no translation: to the client, when switched on."""
        if self._forward:
            self._out.client(dg.CustomFromThinkProvider(content=event))
