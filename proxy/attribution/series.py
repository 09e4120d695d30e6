"""The attribution series: attributed GPU time and energy per tenant and model, what no
request took, and the cost gauges (DESIGN.md section 14).

Counters are kept here and yielded by ``collect`` (a registry collector), because they
are added to from the sampler's thread. With ``--workers`` a worker exports the
attributed pair and the supervisor the unattributed pair (``parts``); the merge sums them.
"""

from __future__ import annotations

import threading
from collections.abc import Iterator

from prometheus_client.metrics_core import CounterMetricFamily, GaugeMetricFamily, Metric

ATTRIBUTED = "attributed"
UNATTRIBUTED = "unattributed"


class AttributionSeries:
    """Exported once ``active`` (the GPU collector read a GPU): before, nothing."""

    def __init__(self, parts: tuple[str, ...] = (ATTRIBUTED, UNATTRIBUTED)) -> None:
        self.parts = parts
        self.active = False
        self._lock = threading.Lock()
        self._by: dict[tuple[str, str], list[float]] = {}
        self._unattributed = [0.0, 0.0]

    def attribute(self, tenant: str, model: str, seconds: float, joules: float) -> None:
        with self._lock:
            pair = self._by.setdefault((tenant, model), [0.0, 0.0])
            pair[0] += seconds
            pair[1] += joules

    def unattributed(self, seconds: float, joules: float) -> None:
        with self._lock:
            self._unattributed[0] += seconds
            self._unattributed[1] += joules

    def totals(self) -> tuple[float, float, float, float]:
        """Attributed seconds and joules, unattributed seconds and joules (tests, logs)."""
        with self._lock:
            seconds = sum(p[0] for p in self._by.values())
            joules = sum(p[1] for p in self._by.values())
            return seconds, joules, self._unattributed[0], self._unattributed[1]

    def describe(self) -> list[Metric]:
        return []

    def collect(self) -> Iterator[Metric]:
        if not self.active:
            return
        with self._lock:
            by = {k: list(v) for k, v in self._by.items()}
            unattributed = list(self._unattributed)
        if ATTRIBUTED in self.parts:
            seconds = CounterMetricFamily("infermeter_gpu_attributed_seconds", "GPU busy time attributed to "
                                          "requests, by their work in each sampling interval.", labels=["tenant", "model"])
            joules = CounterMetricFamily("infermeter_gpu_attributed_energy_joules", "GPU energy attributed to "
                                         "requests, by their work in each sampling interval.", labels=["tenant", "model"])
            for (tenant, model), (s, j) in sorted(by.items()):
                seconds.add_metric([tenant, model], s)
                joules.add_metric([tenant, model], j)
            yield seconds
            yield joules
        if UNATTRIBUTED in self.parts:
            yield CounterMetricFamily("infermeter_gpu_unattributed_seconds", "GPU busy time no request took: idle "
                                      "intervals, other processes, other GPUs.", value=unattributed[0])
            yield CounterMetricFamily("infermeter_gpu_unattributed_energy_joules", "GPU energy no request took: idle "
                                      "intervals, other processes, other GPUs.", value=unattributed[1])


class CostGauges:
    """``--gpu-hour-cost`` and ``--energy-kwh-cost``, each exported when set."""

    def __init__(self, gpu_hour: float | None, energy_kwh: float | None) -> None:
        self._gpu_hour = gpu_hour
        self._energy_kwh = energy_kwh

    def describe(self) -> list[Metric]:
        return list(self.collect())

    def collect(self) -> Iterator[Metric]:
        if self._gpu_hour is not None:
            yield GaugeMetricFamily("infermeter_gpu_hour_cost", "What one GPU hour costs (--gpu-hour-cost), "
                                    "in the operator's currency.", value=self._gpu_hour)
        if self._energy_kwh is not None:
            yield GaugeMetricFamily("infermeter_energy_kwh_cost", "What one kWh costs (--energy-kwh-cost), "
                                    "in the operator's currency.", value=self._energy_kwh)
