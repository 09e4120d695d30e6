"""The bisecting observe leaves exactly what the library's own observe leaves."""

from __future__ import annotations

import math
import re
from bisect import bisect_left
from importlib.metadata import version
from pathlib import Path

import pytest
from prometheus_client import CollectorRegistry, Histogram
from prometheus_client.samples import Exemplar
from prometheus_client.validation import _validate_exemplar

from proxy.metrics import buckets, fastobserve
from proxy.metrics.fastobserve import HOOKS, FastObserve, check_hooks, fast, upper_bounds

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


# prometheus-client's private names fastobserve reads: each pinned here, so an upgrade
# that moves one fails these tests by name, not the exposition by a wrong number.
def test_the_private_histogram_fields_are_where_fastobserve_reads_them() -> None:
    registry = CollectorRegistry()
    histogram = Histogram("h_seconds", "h", ["endpoint"], registry=registry, buckets=(0.1, 1.0))
    child = histogram.labels("chat")
    assert all(hasattr(child, name) for name in HOOKS)
    assert upper_bounds(histogram) == child._upper_bounds == [0.1, 1.0, math.inf]
    # One value per bucket, not cumulative (the exposition sums them), and a sum.
    assert len(child._buckets) == 3
    child.observe(0.05)
    child.observe(0.5)
    child._buckets[1].inc(2)
    child._sum.inc(1.0)
    assert [b.get() for b in child._buckets] == [1.0, 3.0, 0.0]
    assert child._sum.get() == 1.55
    assert registry.get_sample_value("h_seconds_bucket", {"endpoint": "chat", "le": "1.0"}) == 4
    child._buckets[0].set_exemplar(Exemplar({"request_id": "r"}, 0.05, 1.0))
    (family,) = registry.collect()
    bucket = next(s for s in family.samples if s.labels.get("le") == "0.1")
    assert bucket.exemplar == Exemplar({"request_id": "r"}, 0.05, 1.0)


def test_the_exemplar_check_is_the_librarys() -> None:
    _validate_exemplar({"request_id": "r" * 100})  # type: ignore[no-untyped-call]
    with pytest.raises(ValueError):
        _validate_exemplar({"request_id": "r" * 200})  # type: ignore[no-untyped-call]


def test_a_library_without_the_fields_stops_start_up(monkeypatch: pytest.MonkeyPatch) -> None:
    check_hooks()

    class Moved(Histogram):
        def _metric_init(self) -> None:
            super()._metric_init()
            del self._sum

    monkeypatch.setattr(fastobserve, "Histogram", Moved)
    with pytest.raises(RuntimeError, match="_sum"):
        check_hooks()


def test_pyproject_allows_only_the_tested_prometheus_client() -> None:
    """The installed version is the tested one; the bound keeps a fresh install to its minor."""
    pyproject = (Path(__file__).resolve().parents[2] / "pyproject.toml").read_text()
    (line,) = re.findall(r'"(prometheus-client[^"]*)"', pyproject)
    major, minor = (int(p) for p in version("prometheus-client").split(".")[:2])
    assert line == f"prometheus-client>={major}.{minor},<{major}.{minor + 1}"
