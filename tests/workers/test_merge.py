"""The merge rules: sums over workers, dead ones kept, gauges live, one copy of facts, latest exemplar."""

from __future__ import annotations

import math

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram
from prometheus_client.metrics_core import Metric
from prometheus_client.openmetrics.exposition import generate_latest as openmetrics

from proxy.workers.merge import Merger
from proxy.workers.snapshot import decode, encode, snapshot


class _Worker:
    def __init__(self) -> None:
        self.registry = CollectorRegistry()
        self.requests = Counter("r", "requests", ("endpoint",), registry=self.registry)
        self.in_flight = Gauge("in_flight", "in flight", registry=self.registry)
        self.start = Gauge("process_start_time_seconds", "start", registry=self.registry)
        self.ttft = Histogram("ttft_seconds", "ttft", registry=self.registry, buckets=(0.1, 1.0))

    def families(self) -> list[Metric]:
        return decode(snapshot(self.registry))


def _value(families: list[Metric], sample: str, **labels: str) -> float | None:
    for f in families:
        for s in f.samples:
            if s.name == sample and s.labels == labels:
                return s.value
    return None


def test_snapshot_round_trip_is_exact_with_exemplars() -> None:
    w = _Worker()
    w.ttft.observe(0.05, {"request_id": "a"})
    w.requests.labels("chat").inc(0.1 + 0.2)
    w.in_flight.set(math.inf)
    back = decode(encode(w.registry.collect()))
    assert _value(back, "r_total", endpoint="chat") == 0.1 + 0.2
    assert _value(back, "in_flight") == math.inf
    bucket = next(s for f in back for s in f.samples if s.name == "ttft_seconds_bucket" and s.labels["le"] == "0.1")
    assert bucket.exemplar is not None and bucket.exemplar.labels == {"request_id": "a"}


def test_counters_sum_and_survive_a_dead_worker_while_gauges_do_not() -> None:
    merger = Merger()
    a, b = _Worker(), _Worker()
    a.requests.labels("chat").inc(3)
    b.requests.labels("chat").inc(4)
    b.requests.labels("embeddings").inc(1)
    a.in_flight.set(2)
    b.in_flight.set(5)
    merger.update(1, a.families())
    merger.update(2, b.families())
    merged = merger.merged([])
    assert _value(merged, "r_total", endpoint="chat") == 7
    assert _value(merged, "in_flight") == 7
    # b dies; its replacement c counts from zero on top of what b had counted.
    merger.retire(2)
    c = _Worker()
    c.requests.labels("chat").inc(1)
    merger.update(3, c.families())
    merged = merger.merged([])
    assert _value(merged, "r_total", endpoint="chat") == 8
    assert _value(merged, "r_total", endpoint="embeddings") == 1
    assert _value(merged, "in_flight") == 2
    assert _value(merged, "ttft_seconds_count") == 0


def test_created_is_the_earliest_and_facts_appear_once() -> None:
    merger = Merger()
    a, b = _Worker(), _Worker()
    a.start.set(100)
    b.start.set(200)
    merger.update(1, a.families())
    merger.update(2, b.families())
    created = [_value(w.families(), "r_created") for w in (a, b)]
    merged = merger.merged([])
    assert _value(merged, "process_start_time_seconds") == 100
    own = _Worker()
    own.start.set(50)
    assert _value(merger.merged(own.families()), "process_start_time_seconds") == 50
    # Counters without children have no _created sample; histograms do.
    assert created == [None, None]
    hist_created = [_value(w.families(), "ttft_seconds_created") for w in (a, b)]
    assert _value(merged, "ttft_seconds_created") == min(v for v in hist_created if v is not None)


def test_latest_exemplar_wins_and_renders_as_openmetrics() -> None:
    merger = Merger()
    a, b = _Worker(), _Worker()
    a.ttft.observe(0.05, {"request_id": "old"})
    b.ttft.observe(0.06, {"request_id": "new"})
    merger.update(1, a.families())
    merger.update(2, b.families())
    registry = CollectorRegistry(auto_describe=False)

    class _Merged:
        def collect(self) -> list[Metric]:
            return merger.merged([])

    registry.register(_Merged())
    text = openmetrics(registry).decode()  # type: ignore[no-untyped-call]
    assert 'ttft_seconds_bucket{le="0.1"} 2.0 # {request_id="new"} 0.06' in text
    assert "old" not in text
    assert text.rstrip().endswith("# EOF")


def test_merged_counters_never_decrease_over_deaths_and_stale_snapshots() -> None:
    merger = Merger()
    live = {1: _Worker(), 2: _Worker()}
    next_id = 3
    seen = 0.0
    for step in range(30):
        for wid, w in live.items():
            w.requests.labels("chat").inc(wid)
            if step % 3 or wid == 1:  # worker 2 answers only sometimes: its snapshot goes stale
                merger.update(wid, w.families())
        if step % 7 == 6:
            dead = min(live)
            merger.retire(dead)
            del live[dead]
            live[next_id] = _Worker()
            next_id += 1
        total = _value(merger.merged([]), "r_total", endpoint="chat") or 0.0
        assert total >= seen
        seen = total
