"""What the proxy counts, and how the counts become Prometheus text at scrape time.

The hot path (a frame in, a frame out) only bumps plain integers on one
`Metrics` object: no locks, no label lookups, no client-library calls. The
Prometheus client library is used only when /metrics is scraped, through a
custom collector that reads these integers, so a proxy nobody scrapes pays
next to nothing for them.
"""

from __future__ import annotations

from bisect import bisect_left
from collections import Counter
from collections.abc import Iterator, Sequence
from typing import TYPE_CHECKING, Any

from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily, HistogramMetricFamily
from prometheus_client.registry import Collector

if TYPE_CHECKING:
    from .server import ProxyServer

PREFIX = "openai_proxy"

# Seconds. Connecting includes DNS, TCP, TLS and the HTTP upgrade.
CONNECT_BUCKETS = (0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0)
# Seconds. One event through the pure session: parse, decide, encode actions.
TRANSLATION_BUCKETS = (5e-6, 1e-5, 2.5e-5, 5e-5, 1e-4, 2.5e-4, 5e-4, 1e-3, 2.5e-3, 5e-3, 1e-2, 2.5e-2)
# One translated event in this many is timed: perf_counter_ns twice per event
# is cheap, but the histogram update is not free and the shape is what matters.
TRANSLATION_SAMPLE_EVERY = 8

# The four directions a frame can travel, as the `direction` label says them.
DIRECTIONS = ("client_to_proxy", "proxy_to_client", "upstream_to_proxy", "proxy_to_upstream")


class Histogram:
    """Cumulative-bucket histogram as plain integers (observe is a bisect and two adds)."""

    __slots__ = ("bounds", "counts", "sum")

    def __init__(self, bounds: Sequence[float]) -> None:
        self.bounds = tuple(bounds)
        self.counts = [0] * (len(self.bounds) + 1)  # the last slot is +Inf
        self.sum = 0.0

    def observe(self, value: float) -> None:
        # bisect_left: a value equal to a bound belongs to that bound's `le` bucket.
        self.counts[bisect_left(self.bounds, value)] += 1
        self.sum += value

    @property
    def count(self) -> int:
        return sum(self.counts)

    def buckets(self) -> list[tuple[str, float]]:
        """Prometheus buckets: cumulative counts per upper bound, ending with +Inf."""
        out, running = [], 0
        for bound, count in zip((*self.bounds, float("inf")), self.counts, strict=True):
            running += count
            out.append(("+Inf" if bound == float("inf") else repr(bound), running))
        return out


class Metrics:
    """Every counter of one server process. Plain attributes, bumped in place."""

    def __init__(self) -> None:
        # Frames and payload sizes per direction. Binary frames count bytes;
        # text frames count characters, which is bytes for the ASCII JSON the
        # proxy writes and nearly so for what it reads.
        self.frames_client_to_proxy = 0
        self.bytes_client_to_proxy = 0
        self.frames_proxy_to_client = 0
        self.bytes_proxy_to_client = 0
        self.frames_upstream_to_proxy = 0
        self.bytes_upstream_to_proxy = 0
        self.frames_proxy_to_upstream = 0
        self.bytes_proxy_to_upstream = 0
        # ("closed", "1000"), ("rejected", "401"), ... -> count
        self.connections: Counter[tuple[str, str]] = Counter()
        self.errors: Counter[str] = Counter()  # protocol Error codes sent to clients
        self.upstream_connect_failures = 0
        # Session renewals by cause (a fixed set: see proxy/translate/renewal.py).
        self.upstream_renewals: Counter[str] = Counter()
        self.upstream_connect = Histogram(CONNECT_BUCKETS)
        self.translation: dict[str, Histogram] = {}

    def connection_ended(self, outcome: str, code: int | str | None) -> None:
        self.connections[(outcome, "none" if code is None else str(code))] += 1

    def translated(self, event: str, nanoseconds: int) -> None:
        histogram = self.translation.get(event)
        if histogram is None:
            histogram = self.translation[event] = Histogram(TRANSLATION_BUCKETS)
        histogram.observe(nanoseconds / 1e9)


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
        ready.add_metric([], 1 if server.accepting and server.port is not None else 0)
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

        renewals = CounterMetricFamily(
            f"{PREFIX}_upstream_renewals", "Upstream sessions replaced mid-call, by cause.", labels=["cause"]
        )
        for cause, count in sorted(metrics.upstream_renewals.items()):
            renewals.add_metric([cause], count)
        yield renewals

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
