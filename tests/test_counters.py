"""The counters behind /metrics: labels a client can influence stay bounded (issue 10, "Edges")."""

from __future__ import annotations

import pytest
import trio
from trio_websocket import open_websocket_url

from proxy.counters import Metrics, close_code_label


@pytest.mark.parametrize(
    "code, label",
    [
        (1000, "1000"),
        (1001, "1001"),
        (1008, "1008"),
        (1011, "1011"),
        (1013, "1013"),
        (1005, "1005"),  # no status received: reported locally, never sent
        (1004, "other"),  # reserved, not a close code
        (2999, "other"),
        (3000, "3xxx"),
        (3999, "3xxx"),
        (4000, "4xxx"),
        (4321, "4xxx"),
        (4999, "4xxx"),
        (5000, "other"),
        (65535, "other"),
        (None, "none"),
    ],
)
def test_close_code_labels(code, label):
    assert close_code_label(code) == label


def test_every_client_chosen_close_code_lands_in_a_handful_of_series():
    metrics = Metrics()
    for code in range(65536):
        metrics.connection_ended("closed", code)
    labels = {label for outcome, label in metrics.connections}
    assert len(labels) <= 20, sorted(labels)
    assert sum(metrics.connections.values()) == 65536  # bucketed, not dropped
    # The proxy's own HTTP statuses are few and kept as they are.
    metrics.connection_ended("rejected", 401)
    assert metrics.connections[("rejected", "401")] == 1


async def test_a_client_close_code_is_counted_in_its_bucket(proxy):
    with trio.fail_after(10):
        for code in (4001, 4002, 3210):
            async with open_websocket_url(proxy.url) as client:
                await client.get_message()  # Welcome
                await client.aclose(code=code)
        while proxy.server.connections:
            await trio.sleep(0.01)
    closed = {label: count for (outcome, label), count in proxy.server.metrics.connections.items() if outcome == "closed"}
    assert closed == {"4xxx": 2, "3xxx": 1}
