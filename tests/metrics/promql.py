"""Reference quantiles for the bucket tests: PromQL's ``histogram_quantile`` over classic
buckets, and the exact quantile of a sample.

``histogram_quantile`` follows ``bucketQuantile`` in Prometheus's promql/quantile.go:
buckets sorted by upper bound, the last one +Inf; rank = q x total; the first bucket whose
cumulative count reaches the rank; linear interpolation inside it, from 0 when the lowest
bucket's bound is positive; a rank in the +Inf bucket returns the highest finite bound.
The sample quantile is PromQL's ``quantile`` (and numpy's default): rank q x (n - 1),
interpolated between neighbours.
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Sequence

from prometheus_client import Histogram


def histogram_quantile(q: float, buckets: Iterable[tuple[float, float]]) -> float:
    """``buckets``: (upper bound, cumulative count) pairs, in any order."""
    ordered = sorted(buckets)
    if math.isnan(q) or len(ordered) < 2 or not math.isinf(ordered[-1][0]):
        return math.nan
    if q < 0:
        return -math.inf
    if q > 1:
        return math.inf
    total = ordered[-1][1]
    if total == 0:
        return math.nan
    rank = q * total
    b = next((i for i, (_, count) in enumerate(ordered[:-1]) if count >= rank), len(ordered) - 1)
    if b == len(ordered) - 1:
        return ordered[-2][0]
    end, count = ordered[b]
    if b == 0 and end <= 0:
        return end
    start = 0.0
    if b > 0:
        start, below = ordered[b - 1]
        count -= below
        rank -= below
    return start + (end - start) * (rank / count)


def sample_quantile(ordered: Sequence[float], q: float) -> float:
    """The q-quantile of an already sorted sample."""
    rank = q * (len(ordered) - 1)
    low = math.floor(rank)
    high = min(low + 1, len(ordered) - 1)
    weight = rank - low
    return ordered[low] * (1 - weight) + ordered[high] * weight


def cumulative_buckets(histogram: Histogram) -> list[tuple[float, float]]:
    """(le, cumulative count) of an unlabelled histogram, as its exposition gives them."""
    return [(float(s.labels["le"]), s.value) for metric in histogram.collect() for s in metric.samples
            if s.name.endswith("_bucket")]
