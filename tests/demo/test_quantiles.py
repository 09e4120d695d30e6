"""The demo's live summary (proxy/demo/quantiles.py): its quantile is PromQL's, and
over the demo's own schedule it reads true to 10 % and follows the traffic."""

from __future__ import annotations

import math
import random

import pytest
from prometheus_client import CollectorRegistry, Histogram

from proxy.demo.run import SIM_ARGS, SUMMARY_WINDOW
from proxy.metrics import buckets
from proxy.demo.quantiles import HistogramWindow, Window
from tests.metrics.promql import histogram_quantile

INF = math.inf
TTFT_NAME = "infermeter_time_to_first_token_seconds"


def _schedule() -> tuple[float, float]:
    """The demo simulator's TTFT and jitter: TTFT is uniform on ttft x (1 +- jitter)."""
    args = dict(zip(SIM_ARGS[::2], SIM_ARGS[1::2]))
    return float(args["--ttft"]), float(args["--jitter"])


def _uniform_quantile(q: float, centre: float, jitter: float) -> float:
    return centre * (1 - jitter + 2 * jitter * q)


@pytest.mark.parametrize("buckets_", [
    [(0.1, 50), (0.2, 70), (1.0, 110), (INF, 120)],  # Prometheus's promql/testdata/histograms.test
    [(0.1, 0), (0.2, 0), (0.3, 10), (INF, 10)],  # empty lowest buckets
    [(0.1, 10), (0.2, 10), (0.3, 10), (INF, 10)],  # everything in the lowest bucket: from 0
    [(0.1, 2), (0.2, 5), (INF, 100)],  # most in +Inf: the highest finite bound
    [(0.25, 3), (0.5, 3), (1.0, 7), (INF, 7)],  # a flat stretch between non-empty buckets
])
@pytest.mark.parametrize("q", [0.01, 0.25, 0.5, 0.75, 0.9, 0.95, 0.99, 1.0])
def test_window_quantile_is_promqls(buckets_: list[tuple[float, float]], q: float) -> None:
    assert Window(dict(buckets_)).quantile(q) == pytest.approx(histogram_quantile(q, buckets_))


def test_window_quantile_matches_promql_on_random_histograms() -> None:
    rng = random.Random(5)
    bounds = (*buckets.TTFT, INF)
    for _ in range(200):
        counts = [rng.choice((0, 0, rng.randint(1, 50))) for _ in bounds]
        cumulative = [(b, float(sum(counts[:i + 1]))) for i, b in enumerate(bounds)]
        if cumulative[-1][1] == 0:
            assert Window(dict(cumulative)).quantile(0.5) is None
            continue
        for q in (0.1, 0.5, 0.9, 0.99):
            assert Window(dict(cumulative)).quantile(q) == pytest.approx(histogram_quantile(q, cumulative))


def test_empty_window_has_no_quantile() -> None:
    assert Window({}).quantile(0.5) is None
    assert Window({0.1: 0.0, INF: 0.0}).quantile(0.99) is None


def _observe(histogram: Histogram, centre: float, jitter: float, n: int, rng: random.Random) -> None:
    for _ in range(n):
        histogram.labels("chat_completions", "demo-model").observe(rng.uniform(centre * (1 - jitter),
                                                                                centre * (1 + jitter)))


@pytest.mark.parametrize("seed", range(10))
def test_summary_reads_the_demo_schedule_within_ten_percent(seed: int) -> None:
    """What a 30 s window holds at the demo's pace (about 200 streams), through the real
    TTFT family and the summary's own reading of the registry."""
    centre, jitter = _schedule()
    registry = CollectorRegistry()
    ttft = Histogram(TTFT_NAME, "ttft", ("endpoint", "model"), registry=registry, buckets=buckets.TTFT)
    _observe(ttft, centre, jitter, 200, random.Random(seed))
    window = HistogramWindow(TTFT_NAME, SUMMARY_WINDOW).advance(registry, now=0.0)
    for q in (0.5, 0.9, 0.99):
        shown, true = window.quantile(q), _uniform_quantile(q, centre, jitter)
        assert shown is not None and abs(shown - true) / true <= 0.10, (q, shown, true)


def test_old_ttft_ladder_pinned_the_summary() -> None:
    """The issue's symptom, kept as a guard of this test's power: the old family's single
    0.1-0.25 s bucket shows p99 near 248 ms for a true 194 ms."""
    centre, jitter = _schedule()
    registry = CollectorRegistry()
    old = (0.001, 0.005, 0.01, 0.02, 0.04, 0.06, 0.08, 0.1, 0.25, 0.5, 0.75, 1, 2, 2.5, 5, 7.5, 10, 15, 20, 30, 60)
    ttft = Histogram(TTFT_NAME, "ttft", ("endpoint", "model"), registry=registry, buckets=old)
    _observe(ttft, centre, jitter, 200, random.Random(0))
    p99 = HistogramWindow(TTFT_NAME).advance(registry, now=0.0).quantile(0.99)
    assert p99 is not None and p99 > 1.2 * _uniform_quantile(0.99, centre, jitter)


def test_summary_follows_the_traffic() -> None:
    """Old traffic leaves the window once it is ``span`` old; until then both count."""
    registry = CollectorRegistry()
    ttft = Histogram(TTFT_NAME, "ttft", ("endpoint", "model"), registry=registry, buckets=buckets.TTFT)
    rng = random.Random(1)
    window = HistogramWindow(TTFT_NAME, span=30.0)
    assert window.advance(registry, now=0.0).quantile(0.5) is None
    _observe(ttft, 0.15, 0.3, 300, rng)
    fast = window.advance(registry, now=2.0).quantile(0.5)
    assert fast is not None and abs(fast - 0.15) / 0.15 <= 0.1
    _observe(ttft, 0.6, 0.3, 300, rng)  # the server slows down 4x
    mixed = window.advance(registry, now=4.0).quantile(0.5)
    assert mixed is not None and 0.15 * 1.3 <= mixed <= 0.6 * 0.7  # half and half: between the two
    for now in (6.0, 20.0, 33.0):
        window.advance(registry, now=now)
    slow = window.advance(registry, now=35.0).quantile(0.5)  # the fast requests (before t=2) have aged out
    assert slow is not None and abs(slow - 0.6) / 0.6 <= 0.1
    _observe(ttft, 0.15, 0.3, 300, rng)
    for now in (37.0, 50.0, 66.0):
        window.advance(registry, now=now)
    back = window.advance(registry, now=70.0).quantile(0.5)  # only the latest fast requests remain
    assert back is not None and abs(back - 0.15) / 0.15 <= 0.1
