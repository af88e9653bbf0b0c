"""P5.1: InjectUserMessage items, from creation to the upstream having them.

The item goes upstream and is echoed to the client at once; its
`response.create` may go only once the upstream acknowledged the item id
(`conversation.item.created|added|done`, whichever comes first). That wait
must end even when the acknowledgement never comes (an upstream that
answers under another id, or not at all): after `ack_timeout_s` the
response is asked for anyway and the missing acknowledgement is logged. An
upstream error naming the item's event ends the wait with nothing asked.
At most `max_pending` items wait at once (`PENDING_MESSAGES_FULL` past it).
"""

from __future__ import annotations

import logging

from ..protocol import deepgram as dg
from ..protocol import openai as oa
from .outbox import Outbox
from .waits import ITEM, Wait, Waits

ITEM_ACK_TIMER = "item_ack:"  # + the item id: one deadline per item


class UserMessages:
    def __init__(self, out: Outbox, waits: Waits, log: logging.LoggerAdapter, *, ack_timeout_s: float,
                 max_pending: int) -> None:
        self._out = out
        self._waits = waits
        self._log = log
        self._ack_timeout_s = ack_timeout_s
        self._max_pending = max_pending

    def inject(self, message: dg.InjectUserMessage, now: float) -> None:
        if not message.content.strip():
            self._out.error("INVALID_MESSAGE", "InjectUserMessage: content must be a non-empty string")
            return
        if self._waits.count(ITEM) >= self._max_pending:
            self._out.error(
                "PENDING_MESSAGES_FULL",
                f"InjectUserMessage refused: {self._max_pending} messages are still waiting for the upstream",
            )
            return
        item_id = self._out.new_id("i")
        event_id = self._out.new_id("e")
        self._out.upstream(
            oa.ConversationItemCreate(
                event_id=event_id,
                item=oa.MessageItem(id=item_id, role="user", content=(oa.ContentPart(type="input_text", text=message.content),)),
            )
        )
        self._out.client(dg.ConversationText(role="user", content=message.content))
        self._waits.add(ITEM, event_id, now, item_id)
        self._out.start_timer(ITEM_ACK_TIMER + item_id, now + self._ack_timeout_s)

    def acknowledged(self, item_id: str | None) -> bool:
        """The upstream has the item; True (once per item) when its response is due."""
        if item_id is None:
            return False
        wait = self._waits.first(ITEM, lambda w: w.subject == item_id)
        if wait is None:
            return False
        self._end(wait)
        return True

    def rejected(self, wait: Wait, error: oa.ErrorDetail) -> None:
        """The item's conversation.item.create was refused: no response for it."""
        self._end(wait)
        self._out.error(error.code or error.type, f"InjectUserMessage rejected by the upstream: {error.message}")

    def deadline(self, timer_name: str) -> bool:
        """The acknowledgement did not come in time: True, ask for the response anyway."""
        item_id = timer_name[len(ITEM_ACK_TIMER):]
        wait = self._waits.first(ITEM, lambda w: w.subject == item_id)
        if wait is None:
            return False
        self._waits.discard(wait)
        self._log.warning(
            "no acknowledgement of the injected user item arrived; asking for the response anyway",
            extra={"missing_signal": "conversation.item.added", "item_id": item_id},
        )
        return True

    def _end(self, wait: Wait) -> None:
        self._waits.discard(wait)
        self._out.cancel_timer(ITEM_ACK_TIMER + wait.subject)
