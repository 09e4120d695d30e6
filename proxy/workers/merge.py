"""One exposition from many registries: exact sums that never go backwards.

Every source (the supervisor's own registry, each live worker's last snapshot, and what
workers that died had counted) is merged family by family, sample by sample, keyed by
(sample name, labels):

- counters, histograms and summaries are summed over every source, dead workers
  included: when a worker dies its last snapshot moves into the retired total and its
  replacement counts from zero on top, so a merged counter never decreases and
  ``rate()`` never sees a false reset. ``_created`` is the earliest of them.
- gauges are summed over live sources only (``infermeter_requests_in_flight``, resident
  memory, open fds): a dead worker's in-flight requests are gone, not kept.
- families that say the same in every process (build info, the proxy's start time)
  appear once, from the first source: the supervisor's, when it has them.
- an exemplar is the latest (by its timestamp) that any source holds for the sample.

A worker's snapshot holds what it counted up to the last collection; a worker killed
with SIGKILL takes what it counted since then with it (at most one poll interval).
"""

from __future__ import annotations

import threading
from collections.abc import Iterable, Iterator
from dataclasses import dataclass, field

from prometheus_client import CollectorRegistry
from prometheus_client.metrics_core import Metric
from prometheus_client.samples import Exemplar, Sample

CUMULATIVE = frozenset({"counter", "histogram", "summary"})
# Gauges that are one process's fact, not a share of a total: one copy, the first source's.
ONE_COPY = frozenset({"process_start_time_seconds", "process_max_fds", "python_info", "infermeter_build_info"})

Key = tuple[str, tuple[tuple[str, str], ...]]


def _when(exemplar: Exemplar) -> float:
    return 0.0 if exemplar.timestamp is None else float(exemplar.timestamp)


@dataclass
class _Sum:
    """One family's merged samples, in the order they were first seen."""

    name: str
    type: str
    documentation: str
    unit: str
    values: dict[Key, float] = field(default_factory=dict)
    labels: dict[Key, dict[str, str]] = field(default_factory=dict)
    exemplars: dict[Key, Exemplar] = field(default_factory=dict)
    sources: int = 0

    @classmethod
    def like(cls, family: Metric) -> _Sum:
        return cls(family.name, family.type, family.documentation, family.unit)

    def add(self, samples: Iterable[Sample]) -> None:
        cumulative = self.type in CUMULATIVE
        values, exemplars = self.values, self.exemplars
        for s in samples:
            # Every source is this same code, so one series' labels come in one order.
            key = (s.name, tuple(s.labels.items()))
            old = values.get(key)
            if old is None:
                values[key] = s.value
                self.labels[key] = s.labels
            elif cumulative and s.name.endswith("_created"):
                values[key] = min(old, s.value)
            else:
                values[key] = old + s.value
            ex = s.exemplar
            if ex is not None:
                kept = exemplars.get(key)
                if kept is None or _when(ex) >= _when(kept):
                    exemplars[key] = ex

    def samples(self) -> Iterator[Sample]:
        for key, value in self.values.items():
            yield Sample(key[0], self.labels[key], value, None, self.exemplars.get(key))

    def metric(self) -> Metric:
        family = Metric(self.name, self.documentation, self.type, self.unit)
        family.samples = list(self.samples())
        return family


class Merger:
    """Workers' last snapshots and the retired totals; ``merged`` renders them with the
    supervisor's own families. Updated on the supervisor's loop, read from the thread
    that renders ``/metrics``: one lock, held for a merge or a pointer swap."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._live: dict[int, list[Metric]] = {}
        self._retired: dict[str, _Sum] = {}

    def update(self, worker: int, families: list[Metric]) -> None:
        with self._lock:
            self._live[worker] = families

    def retire(self, worker: int) -> None:
        """``worker`` died: keep what it counted, drop what it held (gauges)."""
        with self._lock:
            families = self._live.pop(worker, [])
            for f in families:
                if f.type not in CUMULATIVE:
                    continue
                total = self._retired.get(f.name)
                if total is None:
                    total = self._retired[f.name] = _Sum.like(f)
                total.add(f.samples)

    @property
    def live(self) -> list[int]:
        with self._lock:
            return list(self._live)

    def live_families(self, worker: int) -> list[Metric]:
        with self._lock:
            return self._live.get(worker, [])

    def merged(self, own: Iterable[Metric]) -> list[Metric]:
        out: dict[str, _Sum] = {}

        def add(family: Metric | _Sum, samples: Iterable[Sample]) -> None:
            total = out.get(family.name)
            if total is None:
                total = out[family.name] = _Sum(family.name, family.type, family.documentation, family.unit)
            if family.name in ONE_COPY and total.sources:
                return
            total.sources += 1
            total.add(samples)

        for f in own:
            add(f, f.samples)
        with self._lock:
            for retired in self._retired.values():
                add(retired, retired.samples())
            for families in self._live.values():
                for f in families:
                    add(f, f.samples)
        return [total.metric() for total in out.values()]


class MergedCollector:
    """The one collector of the registry the supervisor's ``/metrics`` renders: its own
    families merged with every worker's."""

    def __init__(self, merger: Merger, own: CollectorRegistry) -> None:
        self._merger = merger
        self._own = own

    def collect(self) -> Iterable[Metric]:
        return self._merger.merged(self._own.collect())


def merged_registry(merger: Merger, own: CollectorRegistry) -> CollectorRegistry:
    registry = CollectorRegistry(auto_describe=False)
    registry.register(MergedCollector(merger, own))
    return registry
