"""What the proxy counts, as plain integers bumped on the hot path.

A leaf module: the server bumps these and the admin listener's collector
(`metrics.py`) reads them at scrape time, so neither the server nor this
module imports the Prometheus library or the other.
"""

from __future__ import annotations

from bisect import bisect_left
from collections import Counter
from collections.abc import Sequence

# Seconds. Connecting includes DNS, TCP, TLS and the HTTP upgrade.
CONNECT_BUCKETS = (0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0)
# Seconds. One event through the pure session: parse, decide, encode actions.
TRANSLATION_BUCKETS = (5e-6, 1e-5, 2.5e-5, 5e-5, 1e-4, 2.5e-4, 5e-4, 1e-3, 2.5e-3, 5e-3, 1e-2, 2.5e-2)
# One translated event in this many is timed: perf_counter_ns twice per event
# is cheap, but the histogram update is not free and the shape is what matters.
TRANSLATION_SAMPLE_EVERY = 8

# The four directions a frame can travel, as the `direction` label says them.
DIRECTIONS = ("client_to_proxy", "proxy_to_client", "upstream_to_proxy", "proxy_to_upstream")

# The close codes RFC 6455 section 7.4.1 defines plus those IANA registered
# since (1012-1014), kept as themselves in the `code` label. The client
# picks its close code: taken as is, one client could mint up to 65,536
# label values, each a series Prometheus keeps forever.
KNOWN_CLOSE_CODES = frozenset((1000, 1001, 1002, 1003, 1005, 1006, 1007, 1008, 1009, 1010, 1011, 1012, 1013, 1014, 1015))


def close_code_label(code: int | None) -> str:
    """A bounded label for a WebSocket close code: a known code, `3xxx`, `4xxx`, `other` or `none`."""
    if code is None:
        return "none"
    if code in KNOWN_CLOSE_CODES:
        return str(code)
    if 3000 <= code <= 3999:  # registered with IANA for libraries and frameworks
        return "3xxx"
    if 4000 <= code <= 4999:  # private use
        return "4xxx"
    return "other"


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
        self.upstream_connect = Histogram(CONNECT_BUCKETS)
        self.translation: dict[str, Histogram] = {}

    def connection_ended(self, outcome: str, code: int | None) -> None:
        """Count a handshake the proxy rejected (`code` = its HTTP status) or a session that closed.

        A rejection's status is one the proxy chose; a close code may be the
        client's, so it is bucketed (`close_code_label`).
        """
        label = close_code_label(code) if outcome == "closed" else ("none" if code is None else str(code))
        self.connections[(outcome, label)] += 1

    def translated(self, event: str, nanoseconds: int) -> None:
        histogram = self.translation.get(event)
        if histogram is None:
            histogram = self.translation[event] = Histogram(TRANSLATION_BUCKETS)
        histogram.observe(nanoseconds / 1e9)
