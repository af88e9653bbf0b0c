"""What the proxy is waiting for from the upstream, in one map keyed by event_id.

Every client event the proxy sends that expects an answer is entered here
with the `event_id` it carried: the first `session.update` (P3.3), a live
update (P5.7), a `response.create` (P5.1-P5.3), a user item (P5.1) and a
`response.cancel` (P5.3, P7). An upstream `error` is matched to the wait it
rejects by that id. The live API often sends `error` with `event_id: null`;
then the rule is (`match_error`):

1. a code that names what failed picks the outstanding wait of that kind
   (`cannot_update_voice` -> the pending speak update, ...), when exactly
   one is outstanding;
2. a code that names something the proxy never waits for (the session
   ending, the audio buffer) matches nothing;
3. otherwise, when exactly one wait is outstanding at all, it is that one;
4. otherwise the error is not matched (it reaches the client as it is).

Every wait has an exit: its answer, an error, or a deadline kept by the
component that entered it.
"""

from __future__ import annotations

from typing import Any, Iterator

import attrs

from ..protocol import openai as oa

# Kinds of wait.
SETTINGS = "settings"  # the first session.update
UPDATE = "update"  # a live update's session.update
RESPONSE = "response"  # our response.create, until response.created
ITEM = "item"  # an InjectUserMessage item, until the upstream has it
CANCEL = "cancel"  # our response.cancel

# Rule 1: upstream error codes that say which kind of request failed. A
# `subject` test narrows it further (a voice error is about a speak update).
CODE_NAMES: dict[str, tuple[str, Any]] = {
    "cannot_update_voice": (UPDATE, lambda wait: getattr(wait.subject, "kind", None) == "speak"),
    "conversation_already_has_active_response": (RESPONSE, None),
    "response_cancel_not_active": (CANCEL, None),
}


# Rule 2: about the session or the audio buffer, never a reply to a request.
NOT_A_REJECTION = frozenset({
    "idle_timeout",
    "session_max_duration",
    "session_expired",
    "input_audio_buffer_commit_empty",
})


@attrs.define
class Wait:
    kind: str
    event_id: str
    sent_at: float
    subject: Any = None  # the Update, ResponseRequest, item id or response id


class Waits:
    """The map, and the rule for errors that name no event_id."""

    def __init__(self) -> None:
        self._by_event_id: dict[str, Wait] = {}

    def add(self, kind: str, event_id: str, now: float, subject: Any = None) -> Wait:
        wait = Wait(kind, event_id, now, subject)
        self._by_event_id[event_id] = wait
        return wait

    def pop(self, event_id: str | None) -> Wait | None:
        return self._by_event_id.pop(event_id, None) if event_id is not None else None

    def discard(self, wait: Wait | None) -> None:
        if wait is not None and self._by_event_id.get(wait.event_id) is wait:
            del self._by_event_id[wait.event_id]

    def of_kind(self, kind: str) -> Iterator[Wait]:
        return (wait for wait in self._by_event_id.values() if wait.kind == kind)

    def first(self, kind: str, test: Any = None) -> Wait | None:
        """The oldest outstanding wait of `kind` (insertion order is send order)."""
        for wait in self.of_kind(kind):
            if test is None or test(wait):
                return wait
        return None

    def count(self, kind: str) -> int:
        return sum(1 for _ in self.of_kind(kind))

    def match_error(self, error: oa.ErrorDetail) -> Wait | None:
        """The wait `error` rejects, removed from the map; None if it names none."""
        if error.event_id is not None:
            return self.pop(error.event_id)
        if error.code in NOT_A_REJECTION:
            return None
        named = CODE_NAMES.get(error.code or "")
        if named is not None:
            kind, test = named
            candidates = [w for w in self.of_kind(kind) if test is None or test(w)]
        else:
            candidates = list(self._by_event_id.values())
        if len(candidates) != 1:
            return None
        return self.pop(candidates[0].event_id)

    def __len__(self) -> int:
        return len(self._by_event_id)
