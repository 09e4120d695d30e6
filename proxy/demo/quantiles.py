"""Reading the proxy's own registry for the demo's live summary: totals and windowed
histogram quantiles, interpolated within buckets as PromQL's histogram_quantile does
(tests/demo/test_quantiles.py holds it to Prometheus's promql/quantile.go)."""

from __future__ import annotations

import math
import time
from collections import deque

from prometheus_client import CollectorRegistry


def _samples(registry: CollectorRegistry, name: str, suffix: str, match: dict[str, str] | None = None) -> list[tuple[dict[str, str], float]]:
    out = []
    for family in registry.collect():
        if family.name != name:
            continue
        for sample in family.samples:
            if sample.name == name + suffix and all(sample.labels.get(k) == v for k, v in (match or {}).items()):
                out.append((sample.labels, sample.value))
    return out


def counter_total(registry: CollectorRegistry, name: str, match: dict[str, str] | None = None) -> float:
    return sum(v for _, v in _samples(registry, name, "_total", match))


def gauge_total(registry: CollectorRegistry, name: str) -> float:
    return sum(v for _, v in _samples(registry, name, ""))


class Window:
    def __init__(self, buckets: dict[float, float]) -> None:
        self.buckets = sorted(buckets.items())

    def quantile(self, q: float) -> float | None:
        """PromQL's histogram_quantile over these buckets (the last one +Inf); None when
        the window holds nothing."""
        if not self.buckets or self.buckets[-1][1] <= 0:
            return None
        rank = q * self.buckets[-1][1]
        prev_bound, prev_count = 0.0, 0.0
        for bound, count in self.buckets:
            if count >= rank:
                if math.isinf(bound):
                    return prev_bound
                if count == prev_count:
                    return bound
                return prev_bound + (bound - prev_bound) * (rank - prev_count) / (count - prev_count)
            prev_bound, prev_count = bound, count
        return prev_bound


class HistogramWindow:
    """Cumulative buckets summed over all label sets, differenced over the last ``span``
    seconds, as ``rate(..._bucket[span])`` would: a quantile over one short summary
    interval would rest on a dozen requests, and its p99 would be whichever came last."""

    def __init__(self, name: str, span: float = 30.0) -> None:
        self.name = name
        self.span = span
        # (time, cumulative buckets); the first is the base the window is measured from:
        # nothing yet (all zero) until a snapshot is ``span`` old.
        self.snapshots: deque[tuple[float, dict[float, float]]] = deque([(-math.inf, {})])

    def advance(self, registry: CollectorRegistry, now: float | None = None) -> Window:
        now = time.monotonic() if now is None else now
        current: dict[float, float] = {}
        for labels, value in _samples(registry, self.name, "_bucket"):
            bound = float(labels["le"])
            current[bound] = current.get(bound, 0.0) + value
        base = self.snapshots[0][1]
        delta = {b: v - base.get(b, 0.0) for b, v in current.items()}
        self.snapshots.append((now, current))
        # Keep the newest snapshot at least ``span`` old as the next base.
        while len(self.snapshots) > 1 and self.snapshots[1][0] <= now - self.span:
            self.snapshots.popleft()
        return Window(delta)
