"""What the registry holds for the collectors: prometheus_client collectors that only yield what is cached.

``collect()`` runs on whatever thread renders ``/metrics`` (often the event loop), so it
never reads a source: it returns families the sampler already built, or computes a
value from plain fields under a lock held for microseconds.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Sequence

from prometheus_client.metrics_core import GaugeMetricFamily, Metric

from proxy.collectors.base import Status, SyncCollector
from proxy.collectors.sampler import Sampler


class CachedCollector:
    """Exposes one synchronous collector's last sample from the sampler's cache."""

    def __init__(self, sampler: Sampler, collector: SyncCollector) -> None:
        self._sampler = sampler
        self._collector = collector

    def describe(self) -> Sequence[Metric]:
        return self._collector.describe()

    def collect(self) -> Iterable[Metric]:
        return self._sampler.families(self._collector.name)


def status_families(statuses: Iterable[tuple[str, Status]]) -> list[Metric]:
    success = GaugeMetricFamily(
        "infermeter_collector_success", "1 if the collector's last read succeeded, else 0.", labels=["collector"]
    )
    duration = GaugeMetricFamily(
        "infermeter_collector_duration_seconds",
        "How long the collector's last read took (the time so far while one overruns).",
        labels=["collector"],
    )
    for name, status in statuses:
        success.add_metric([name], 1.0 if status.success else 0.0)
        duration.add_metric([name], status.duration)
    return [success, duration]


class StatusCollector:
    """``infermeter_collector_success`` and ``_duration_seconds`` for every enabled collector."""

    def __init__(self, statuses: Callable[[], Iterable[tuple[str, Status]]]) -> None:
        self._statuses = statuses

    def describe(self) -> Sequence[Metric]:
        return status_families(())

    def collect(self) -> Iterable[Metric]:
        return status_families(self._statuses())
