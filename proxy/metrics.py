"""What the proxy counts, and how the counts become Prometheus text at scrape time.

The hot path (a frame in, a frame out) only bumps plain integers on one
`Metrics` object (`counters.py`): no locks, no label lookups, no client-library calls. The
Prometheus client library is used only when /metrics is scraped, through a
custom collector that reads these integers, so a proxy nobody scrapes pays
next to nothing for them.
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import TYPE_CHECKING, Any

from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily, HistogramMetricFamily
from prometheus_client.registry import Collector

from .counters import DIRECTIONS, TRANSLATION_SAMPLE_EVERY, Histogram, Metrics

if TYPE_CHECKING:
    from .server import ProxyServer

__all__ = ["DIRECTIONS", "PREFIX", "TRANSLATION_SAMPLE_EVERY", "Histogram", "Metrics", "ProxyCollector"]

PREFIX = "openai_proxy"


class ProxyCollector(Collector):
    """Reads a live `ProxyServer` and its `Metrics` when Prometheus scrapes."""

    def __init__(self, server: ProxyServer) -> None:
        self.server = server

    def collect(self) -> Iterator[Any]:
        server, metrics = self.server, self.server.metrics

        active = GaugeMetricFamily(f"{PREFIX}_active_connections", "Client sessions open now.")
        active.add_metric([], len(server.connections))
        yield active

        ready = GaugeMetricFamily(f"{PREFIX}_accepting", "1 while new client handshakes are accepted.")
        ready.add_metric([], 1 if server.not_ready_reason() is None else 0)  # as /readyz says
        yield ready

        connections = CounterMetricFamily(
            f"{PREFIX}_connections",
            "Client handshakes by outcome: rejected (code = HTTP status) or closed (code = WebSocket close code).",
            labels=["outcome", "code"],
        )
        for (outcome, code), count in sorted(metrics.connections.items()):
            connections.add_metric([outcome, code], count)
        yield connections

        frames = CounterMetricFamily(f"{PREFIX}_frames", "WebSocket messages relayed.", labels=["direction"])
        sizes = CounterMetricFamily(
            f"{PREFIX}_payload_bytes",
            "Message payload sizes (text frames counted in characters).",
            labels=["direction"],
        )
        for direction in DIRECTIONS:
            frames.add_metric([direction], getattr(metrics, f"frames_{direction}"))
            sizes.add_metric([direction], getattr(metrics, f"bytes_{direction}"))
        yield frames
        yield sizes

        errors = CounterMetricFamily(f"{PREFIX}_errors", "Error messages sent to clients, by code.", labels=["code"])
        for code, count in sorted(metrics.errors.items()):
            errors.add_metric([code], count)
        yield errors

        failures = CounterMetricFamily(f"{PREFIX}_upstream_connect_failures", "Upstream connects that failed (P2.3).")
        failures.add_metric([], metrics.upstream_connect_failures)
        yield failures

        connect = HistogramMetricFamily(
            f"{PREFIX}_upstream_connect_seconds", "Time to open the upstream WebSocket (successful connects)."
        )
        connect.add_metric([], metrics.upstream_connect.buckets(), metrics.upstream_connect.sum)
        yield connect

        translation = HistogramMetricFamily(
            f"{PREFIX}_translation_seconds",
            f"Time the session takes per event, sampled 1 in {TRANSLATION_SAMPLE_EVERY} events.",
            labels=["event"],
        )
        for event, histogram in sorted(metrics.translation.items()):
            translation.add_metric([event], histogram.buckets(), histogram.sum)
        yield translation
