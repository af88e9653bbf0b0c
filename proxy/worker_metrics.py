"""/metrics and /readyz for all workers: each publishes its figures, the admin listener adds them up.

Every worker writes its `Metrics` and readiness as one small JSON file in a
directory the parent made (`worker-<slot>.json`, replaced atomically), once
per heartbeat (at most a second apart). The admin listener, in the first
worker, reads its own figures live and the others' last files, so a scrape
covers every worker and may lag the others by up to one beat. Nothing is
shared between processes but these files; a worker that is started again in
a slot overwrites its predecessor's file, so its counters restart from zero
as Prometheus expects of a restarted process.
"""

from __future__ import annotations

import json
import os
from collections import Counter
from typing import TYPE_CHECKING, Any

from .counters import TRANSLATION_BUCKETS, Histogram, Metrics

if TYPE_CHECKING:
    from .config import Config
    from .server import ProxyServer

COUNTERS = tuple(
    f"{kind}_{direction}"
    for direction in ("client_to_proxy", "proxy_to_client", "upstream_to_proxy", "proxy_to_upstream")
    for kind in ("frames", "bytes")
) + ("upstream_connect_failures",)


def snapshot(server: ProxyServer) -> dict[str, Any]:
    metrics = server.metrics
    return {
        "active": len(server.connections),
        "not_ready": server.not_ready_reason(),
        **{name: getattr(metrics, name) for name in COUNTERS},
        "connections": [[outcome, code, count] for (outcome, code), count in metrics.connections.items()],
        "errors": dict(metrics.errors),
        "upstream_connect": [metrics.upstream_connect.counts, metrics.upstream_connect.sum],
        "translation": {event: [h.counts, h.sum] for event, h in metrics.translation.items()},
    }


def publish(server: ProxyServer, directory: str, index: int) -> None:
    path = os.path.join(directory, f"worker-{index}.json")
    temporary = f"{path}.{os.getpid()}.tmp"
    try:
        with open(temporary, "w", encoding="utf-8") as file:
            json.dump(snapshot(server), file)
        os.replace(temporary, path)  # a reader sees the old file or the new one, never half
    except OSError:
        pass  # figures are best effort; serving is not


def _read_others(directory: str, index: int) -> list[dict[str, Any]]:
    out = []
    try:
        names = os.listdir(directory)
    except OSError:
        return out
    for name in names:
        if not (name.startswith("worker-") and name.endswith(".json")) or name == f"worker-{index}.json":
            continue
        try:
            with open(os.path.join(directory, name), encoding="utf-8") as file:
                out.append(json.load(file))
        except (OSError, ValueError):
            continue
    return out


def _add_histogram(into: Histogram, counts: list[int], total: float) -> None:
    if len(counts) == len(into.counts):
        into.counts = [a + b for a, b in zip(into.counts, counts, strict=True)]
        into.sum += total


class AllWorkers:
    """Quacks like the `ProxyServer` that `ProxyCollector` and /readyz read, summed over every worker."""

    def __init__(self, server: ProxyServer, directory: str, index: int) -> None:
        self.config: Config = server.config
        self.port = server.port
        self.accepting = server.accepting
        live = snapshot(server)
        everyone = [live, *_read_others(directory, index)]
        self._not_ready = next((each["not_ready"] for each in everyone if each["not_ready"]), None)
        self.connections = range(sum(each["active"] for each in everyone))
        self.metrics = merged = Metrics()
        for each in everyone:
            for name in COUNTERS:
                setattr(merged, name, getattr(merged, name) + each.get(name, 0))
            merged.connections.update(Counter({(o, c): n for o, c, n in each["connections"]}))
            merged.errors.update(Counter(each["errors"]))
            _add_histogram(merged.upstream_connect, *each["upstream_connect"])
            for event, (counts, total) in each["translation"].items():
                if event not in merged.translation:
                    merged.translation[event] = Histogram(TRANSLATION_BUCKETS)
                _add_histogram(merged.translation[event], counts, total)

    def not_ready_reason(self) -> str | None:
        """Not ready if any worker would refuse a new client: the kernel may hand it to that one."""
        return self._not_ready
