"""Session renewal, the pure parts: what is kept for a new upstream, and how often."""

from __future__ import annotations

import json

from proxy.protocol.wire import encode_upstream
from proxy.protocol import openai as oa
from proxy.translate.renewal import ConversationRecord, RenewalBudget


def wire(items):
    return [json.loads(encode_upstream(oa.ConversationItemCreate(event_id="e", item=item)))["item"] for item in items]


def test_messages_and_answered_calls_replay_in_conversation_order():
    record = ConversationRecord(10)
    record.message("user", "What's the weather?")
    record.function_call("call_1", "weather", '{"city":"Oslo"}')
    record.function_output("call_1", '{"c":3}')
    record.message("assistant", "It is 3 degrees.")
    assert wire(record.items()) == [
        {"type": "message", "role": "user", "content": [{"type": "input_text", "text": "What's the weather?"}]},
        {"type": "function_call", "call_id": "call_1", "name": "weather", "arguments": '{"city":"Oslo"}'},
        {"type": "function_call_output", "call_id": "call_1", "output": '{"c":3}'},
        {"type": "message", "role": "assistant", "content": [{"type": "output_text", "text": "It is 3 degrees."}]},
    ]


def test_an_unanswered_call_is_not_replayed_and_is_forgotten_when_cancelled():
    record = ConversationRecord(10)
    record.function_call("call_1", "weather", "{}")
    assert record.items() == []  # the upstream would wait for its output
    record.forget_unanswered()
    record.function_output("call_1", "late")  # an answer after the renewal changes nothing
    assert record.items() == [] and len(record) == 0


def test_the_cap_drops_the_oldest_entries_first_and_counts_them():
    record = ConversationRecord(3)
    for index in range(5):
        record.message("user", f"turn {index}")
    assert [item.content[0].text for item in record.items()] == ["turn 2", "turn 3", "turn 4"]
    assert record.dropped == 2


def test_a_call_pushed_out_by_the_cap_does_not_come_back_with_its_output():
    record = ConversationRecord(2)
    record.function_call("call_1", "f", "{}")
    record.message("user", "a")
    record.message("user", "b")
    record.function_output("call_1", "out")
    assert [item.type for item in record.items()] == ["message", "message"]


def test_empty_text_is_not_kept():
    record = ConversationRecord(3)
    record.message("assistant", "")
    assert len(record) == 0


def test_budget_allows_max_renewals_per_window_then_recovers():
    budget = RenewalBudget(max_renewals=2, window_s=60)
    assert budget.allows(0)
    budget.spend(0)
    budget.spend(10)
    assert not budget.allows(30)
    assert budget.allows(60.5)  # the first one left the window


def test_backoff_doubles_and_is_capped():
    assert [RenewalBudget.backoff_s(n) for n in (1, 2, 3, 10)] == [0.25, 0.5, 1.0, 4.0]
