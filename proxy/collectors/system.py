"""Host memory and CPU, and the upstream process's memory, CPU and start time (psutil).

The psutil module is a parameter, as prometheus_client's process collector takes its
``/proc`` root, so tests and other platforms can feed their own source.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import psutil
from prometheus_client.metrics_core import (
    CounterMetricFamily,
    GaugeMetricFamily,
    Metric,
)

from proxy.collectors.base import Sample
from proxy.collectors.locator import UpstreamProcessLocator

# cpu_times() fields already counted inside user/nice on Linux: adding them would count twice.
_INCLUDED_ELSEWHERE = frozenset({"guest", "guest_nice"})
_OWN_MODES = ("user", "system", "idle", "iowait")


class SystemCollector:
    name = "system"

    def __init__(self, locator: UpstreamProcessLocator | None = None, psutil_module: Any = psutil) -> None:
        self._ps = psutil_module
        self._locator = locator
        # Per-pid CPU accounting keeps the tree's CPU counter monotonic when a worker
        # exits: a dropped sum would read as a counter reset and rate() would spike.
        self._root_key: tuple[int, float] | None = None
        self._live_cpu: dict[tuple[int, float], float] = {}
        self._exited_cpu = 0.0

    def describe(self) -> Sequence[Metric]:
        return _host_families() + _process_families()

    def close(self) -> None:
        pass

    def sample(self) -> Sample:
        memory_total, memory_available, cpu = _host_families()
        vm = self._ps.virtual_memory()
        memory_total.add_metric([], float(vm.total))
        memory_available.add_metric([], float(vm.available))
        times = self._ps.cpu_times()._asdict()
        other = 0.0
        for mode, seconds in times.items():
            if mode in _OWN_MODES:
                cpu.add_metric([mode], float(seconds))
            elif mode not in _INCLUDED_ELSEWHERE:
                other += float(seconds)
        cpu.add_metric(["other"], other)
        families: list[Metric] = [memory_total, memory_available, cpu]
        families.extend(self._upstream_families())
        return Sample(tuple(families))

    def _upstream_families(self) -> list[Metric]:
        tree = self._locator.tree() if self._locator is not None else None
        if not tree:
            return []
        ps = self._ps
        root = tree[0]
        try:
            with root.oneshot():
                start = float(root.create_time())
                rss = float(root.memory_info().rss)
                root_cpu = _cpu_seconds(root)
        except (ps.NoSuchProcess, ps.ZombieProcess):
            assert self._locator is not None
            self._locator.forget()
            return []
        except ps.AccessDenied:
            return []
        root_key = (root.pid, start)
        if root_key != self._root_key:
            self._root_key, self._live_cpu, self._exited_cpu = root_key, {}, 0.0
        live = {root_key: root_cpu}
        for child in tree[1:]:
            try:
                with child.oneshot():
                    key = (child.pid, float(child.create_time()))
                    rss += float(child.memory_info().rss)
                    live[key] = _cpu_seconds(child)
            except (ps.NoSuchProcess, ps.ZombieProcess, ps.AccessDenied):
                continue
        for key, seconds in self._live_cpu.items():
            if key not in live:
                self._exited_cpu += seconds
        self._live_cpu = live
        resident, cpu, started = _process_families()
        resident.add_metric([], rss)
        cpu.add_metric([], self._exited_cpu + sum(live.values()))
        started.add_metric([], start)
        return [resident, cpu, started]


def _cpu_seconds(proc: Any) -> float:
    times = proc.cpu_times()
    return float(times.user) + float(times.system)


def _host_families() -> list[Any]:
    return [
        GaugeMetricFamily("infermeter_host_memory_total_bytes", "Physical memory of the host."),
        GaugeMetricFamily(
            "infermeter_host_memory_available_bytes", "Memory available to new processes without swapping."
        ),
        CounterMetricFamily(
            "infermeter_host_cpu_seconds",
            "CPU time of all host CPUs by mode; other is nice, irq, softirq and steal.",
            labels=["mode"],
        ),
    ]


def _process_families() -> list[Any]:
    return [
        GaugeMetricFamily(
            "infermeter_upstream_process_resident_memory_bytes",
            "Resident memory of the upstream process and its children (shared pages counted in each).",
        ),
        CounterMetricFamily(
            "infermeter_upstream_process_cpu_seconds",
            "User and system CPU time of the upstream process and its children, exited children included.",
        ),
        GaugeMetricFamily(
            "infermeter_upstream_process_start_time_seconds", "Start time of the upstream process, in seconds since the epoch."
        ),
    ]
