"""The bisecting observe leaves exactly what the library's own observe leaves."""

from __future__ import annotations

import math
from bisect import bisect_left

import pytest
from prometheus_client import CollectorRegistry, Histogram

from proxy.metrics import buckets
from proxy.metrics.fastobserve import FastObserve, fast, upper_bounds

VALUES = [0.0, -1.0, 1e-9, 0.02, 0.0205, 0.4, 1.0, 7.5, 59.999, 1e9, math.inf]


def _samples(registry: CollectorRegistry) -> list[tuple[str, dict[str, str], float]]:
    """Every sample but ``_created`` (the time each histogram child was made)."""
    return [(s.name, s.labels, s.value) for metric in registry.collect() for s in metric.samples
            if not s.name.endswith("_created")]


def _pair(bounds: tuple[float, ...]) -> tuple[CollectorRegistry, Histogram, CollectorRegistry, Histogram]:
    a, b = CollectorRegistry(), CollectorRegistry()
    return (a, Histogram("h_seconds", "h", ["endpoint"], registry=a, buckets=bounds),
            b, Histogram("h_seconds", "h", ["endpoint"], registry=b, buckets=bounds))


@pytest.mark.parametrize("bounds", [buckets.TTFT, buckets.INTER_TOKEN, buckets.REQUEST_DURATION, buckets.TOKENS,
                                    buckets.PHASE, (0.1, 1.0)])
def test_same_exposition_as_the_library(bounds: tuple[float, ...]) -> None:
    ra, ha, rb, hb = _pair(bounds)
    slow, quick = ha.labels("chat"), fast(hb.labels("chat"))
    assert isinstance(quick, FastObserve)
    values = VALUES + list(bounds)[:-1] + [b * 1.0001 for b in bounds[:-1]] + [b * 0.9999 for b in bounds[:-1]]
    for v in values:
        slow.observe(v)
        quick.observe(v)
    assert _samples(ra) == _samples(rb)


def test_exemplars_land_on_the_same_bucket() -> None:
    ra, ha, rb, hb = _pair(buckets.TTFT)
    slow, quick = ha.labels("chat"), fast(hb.labels("chat"))
    for i, v in enumerate(VALUES[:-1]):
        slow.observe(v, {"request_id": f"r{i}"})
        quick.observe(v, {"request_id": f"r{i}"})
    # Exemplars carry the time of observation: compare them without it.
    def exemplars(registry: CollectorRegistry) -> list[tuple[str, float, dict[str, str]]]:
        return [(s.labels["le"], s.exemplar.value, s.exemplar.labels)
                for metric in registry.collect() for s in metric.samples if s.exemplar is not None]
    assert exemplars(ra) == exemplars(rb) and exemplars(ra)
    with pytest.raises(ValueError):
        quick.observe(0.1, {"request_id": "x" * 200})


def test_nan_and_unknown_children_take_the_library_path() -> None:
    ra, ha, rb, hb = _pair((0.1, 1.0))
    ha.labels("chat").observe(math.nan)
    fast(hb.labels("chat")).observe(math.nan)
    assert str(_samples(ra)) == str(_samples(rb))
    double = object()
    assert fast(double) is double


def test_counts_added_in_one_go_expose_what_observing_each_would() -> None:
    bounds = buckets.INTER_TOKEN
    ra, ha, rb, hb = _pair(bounds)
    slow, quick = ha.labels("chat"), fast(hb.labels("chat"))
    values = [0.0, 0.0] + list(bounds)[:-1] + [b * 1.0001 for b in bounds[:-1]] + [1e9, 0.0205] * 3
    for v in values:
        slow.observe(v)
    upper = upper_bounds(hb)
    counts = [0] * len(upper)
    for v in values:
        counts[bisect_left(upper, v)] += 1
    quick.observe_counts(counts, math.fsum(values))
    a, b = _samples(ra), _samples(rb)
    assert [s[:2] for s in a] == [s[:2] for s in b]
    for (name, _, want), (_, _, got) in zip(a, b):
        assert got == pytest.approx(want, rel=1e-12), name
    assert rb.get_sample_value("h_seconds_count", {"endpoint": "chat"}) == len(values)
