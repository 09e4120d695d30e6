"""Each GPU sampling interval's busy time and energy, split among the requests in flight.

The GPU collector hands every complete read to ``GpuMeter.observe`` (the sampler's
thread). The meter takes each GPU's increase since the last read, the upstream's share of
it (its GPUs only; all when unknown), asks every party holding requests for its work in
the interval, and settles each party at one rate per unit of work (or, when nobody did
measurable work, per second in flight). What no request takes is unattributed, so
attributed + unattributed is the GPUs' counters' increase since the first read.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Sequence
from typing import Protocol

from proxy.attribution.inflight import Work
from proxy.attribution.series import AttributionSeries
from proxy.collectors.gpu import GpuReading

log = logging.getLogger("infermeter")


class Party(Protocol):
    """Who holds requests: this process's ``InFlight``, or one worker through its link."""

    def measure(self) -> Work | None: ...

    def settle(self, busy: float, energy: float, by: str) -> bool: ...


class GpuMeter:
    def __init__(self, series: AttributionSeries, parties: Callable[[], Sequence[Party]]) -> None:
        self.series = series
        self._parties = parties
        self._last: dict[int, tuple[float, float | None]] = {}
        self._started = False

    def observe(self, readings: list[GpuReading]) -> None:
        if not self._started:
            self._start(readings)
            return
        total_busy = total_energy = busy = energy = 0.0
        for r in readings:
            last_busy, last_energy = self._last.get(r.index, (r.busy_seconds, r.energy_joules))
            d_busy = max(r.busy_seconds - last_busy, 0.0)
            d_energy = 0.0
            if r.energy_joules is not None and last_energy is not None:
                # A counter that went back (the driver reloaded) restarts from here.
                d_energy = max(r.energy_joules - last_energy, 0.0)
            self._last[r.index] = (r.busy_seconds, r.energy_joules if r.energy_joules is not None else last_energy)
            share = 1.0 if r.upstream_share is None else min(max(r.upstream_share, 0.0), 1.0)
            total_busy += d_busy
            total_energy += d_energy
            busy += d_busy * share
            energy += d_energy * share
        taken_busy, taken_energy = self._split(busy, energy)
        self.series.unattributed(total_busy - taken_busy, total_energy - taken_energy)

    def _start(self, readings: list[GpuReading]) -> None:
        self._started = True
        for r in readings:
            self._last[r.index] = (r.busy_seconds, r.energy_joules)
        for party in self._parties():
            if party.measure() is not None:
                party.settle(0.0, 0.0, "work")
        self.series.active = True
        counter = [str(r.index) for r in readings if not r.energy_from_power]
        power = [str(r.index) for r in readings if r.energy_from_power]
        log.info("gpu attribution: energy from NVML's energy counter on GPU(s) %s; from power x time on GPU(s) %s",
                 ", ".join(counter) or "none", ", ".join(power) or "none")

    def _split(self, busy: float, energy: float) -> tuple[float, float]:
        """Settle every party; returns what they took (seconds, joules)."""
        measured = [(party, party.measure()) for party in self._parties()]
        works = [(p, w) for p, w in measured if w is not None]
        work = sum(w.work for _, w in works)
        seconds = sum(w.seconds for _, w in works)
        by, units = ("work", work) if work > 0 else ("seconds", seconds)
        if units <= 0:
            for party, _ in works:
                party.settle(0.0, 0.0, by)
            return 0.0, 0.0
        rate_busy, rate_energy = busy / units, energy / units
        lost = 0.0
        for party, w in works:
            if not party.settle(rate_busy, rate_energy, by):
                # A worker that died between the two steps: its share stays unattributed.
                lost += w.work if by == "work" else w.seconds
        kept = (units - lost) / units
        return busy * kept, energy * kept
