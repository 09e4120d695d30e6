"""The split itself, on the meter's own objects with readings given by hand: the time-in-flight
fallback, idle intervals, a counter that goes back, shares; and the GPU collector's
reading of the upstream's share from NVML's per-process utilization."""

from __future__ import annotations

import time
from time import perf_counter_ns
from typing import Any

import pynvml  # type: ignore[import-untyped]
import pytest

from proxy.attribution.inflight import InFlight
from proxy.attribution.local import Attribution
from proxy.attribution.meter import GpuMeter
from proxy.attribution.series import AttributionSeries
from proxy.collectors.gpu import GpuCollector, GpuReading
from proxy.timing import RequestRecord
from tests.collectors.fake_nvml import FakeGpu, FakeNvml, _Handle

S = 1_000_000_000


class Rig:
    def __init__(self) -> None:
        self.series = AttributionSeries()
        self.inflight = InFlight(prefill_weight=0.5)
        self.meter = GpuMeter(self.series, lambda: (self.inflight,))
        self.attribution = Attribution(self.inflight, self.series, None)

    def read(self, busy: float, energy: float | None, share: float | None = None) -> None:
        self.meter.observe([GpuReading(0, busy, energy, False, share)])

    def start(self, tokens: int = 0, arrived: int | None = None) -> RequestRecord:
        rec = RequestRecord("chat_completions", arrived if arrived is not None else perf_counter_ns())
        self.inflight.begin(rec)
        rec.summary.token_events = tokens
        return rec

    def end(self, rec: RequestRecord) -> None:
        rec.t_end = perf_counter_ns()
        rec.tenant_label, rec.model_label = "t", "m"
        assert self.attribution.holds(rec)
        self.attribution.end(rec)


def test_requests_that_did_no_work_split_by_time_in_flight() -> None:
    rig = Rig()
    rig.read(0.0, 0.0)
    early = rig.start(arrived=perf_counter_ns() - 3 * S)  # in flight the whole interval
    time.sleep(0.2)
    late = rig.start()  # in flight for its second half
    time.sleep(0.2)
    rig.read(1.0, 100.0)
    assert early.energy_joules is not None and late.energy_joules is not None
    assert early.energy_joules + late.energy_joules == pytest.approx(100.0)
    # 0.4 s against 0.2 s, give or take a loaded machine's oversleeping.
    assert 1.5 <= early.energy_joules / late.energy_joules <= 2.7


def test_work_splits_by_tokens_plus_weighted_prompt_in_the_first_token_interval() -> None:
    rig = Rig()
    rig.read(0.0, 0.0)
    a, b = rig.start(), rig.start()
    a.summary.token_events = 10
    b.summary.token_events, b.summary.input_tokens, b.summary.cached_input_tokens = 10, 30, 10
    a.t_first = b.t_first = perf_counter_ns()
    a.summary.input_tokens = 0
    rig.read(1.0, 60.0)
    # a: 10 tokens; b: 10 tokens + (30 - 10 cached) x 0.5 = 20.
    assert a.energy_joules == pytest.approx(20.0) and b.energy_joules == pytest.approx(40.0)
    # The prompt counts once: next interval only new tokens.
    a.summary.token_events, b.summary.token_events = 15, 15
    rig.read(2.0, 120.0)
    assert a.energy_joules == pytest.approx(50.0) and b.energy_joules == pytest.approx(70.0)


def test_idle_interval_is_unattributed_and_a_counter_going_back_adds_nothing() -> None:
    rig = Rig()
    rig.read(5.0, 1000.0)
    rig.read(5.5, 1050.0)  # nothing in flight
    assert list(rig.series.totals()) == [0.0, 0.0, pytest.approx(0.5), pytest.approx(50.0)]
    rig.read(5.6, 10.0)  # the driver reloaded: the counter restarts
    rig.read(5.7, 30.0)
    assert rig.series.totals()[3] == pytest.approx(70.0)


def test_a_request_is_closed_and_counted_once_its_last_interval_is_settled() -> None:
    rig = Rig()
    rig.read(0.0, 0.0)
    rec = rig.start(tokens=0)
    rec.summary.token_events = 4
    rig.end(rec)
    assert rig.series.totals()[1] == 0.0  # its last tokens are in the interval still open
    rig.read(1.0, 40.0)
    assert rec.energy_joules == pytest.approx(40.0) and not rig.attribution.holds(rec)
    rig.read(2.0, 80.0)
    assert list(rig.series.totals()) == [pytest.approx(1.0), pytest.approx(40.0), pytest.approx(1.0), pytest.approx(40.0)]


@pytest.mark.parametrize(("share", "attributable"), [(None, 1.0), (0.0, 0.0), (0.25, 0.25)])
def test_only_the_upstreams_share_is_split(share: float | None, attributable: float) -> None:
    rig = Rig()
    rig.read(0.0, 0.0, share)
    rec = rig.start(tokens=0)
    rec.summary.token_events = 3
    rig.read(1.0, 100.0, share)
    assert rec.energy_joules == pytest.approx(100.0 * attributable)
    assert rig.series.totals()[3] == pytest.approx(100.0 * (1 - attributable))


class ProcessUtilNvml(FakeNvml):
    """A GPU that reports per-process SM utilization (or, with ``samples`` None, none since
    the last read: NVML's NOT_FOUND)."""

    samples: list[tuple[int, int]] | None = []

    def nvmlDeviceGetProcessUtilization(self, handle: _Handle, last_seen: int) -> list[Any]:
        self._gpu(handle, "nvmlDeviceGetProcessUtilization")
        if self.samples is None:
            raise pynvml.NVMLError(pynvml.NVML_ERROR_NOT_FOUND)
        return [pynvml.c_nvmlProcessUtilizationSample_t(pid=pid, timeStamp=last_seen + 1, smUtil=sm)
                for pid, sm in self.samples]


class Locator:
    def pids(self) -> frozenset[int]:
        return frozenset({100})


def test_collector_reads_the_upstreams_share_from_process_utilization_else_memory() -> None:
    # The upstream (pid 100) holds 1 GiB of 4; it ran 30 of the 40 SM-% the processes ran.
    nvml = ProcessUtilNvml([FakeGpu(uuid="GPU-0", processes=[(100, 1024**3), (200, 3 * 1024**3)])])
    nvml.samples = [(100, 30), (200, 10)]
    readings: list[list[GpuReading]] = []
    collector = GpuCollector(nvml=nvml, locator=Locator(), sink=readings.append)  # type: ignore[arg-type]
    try:
        collector.sample()
        assert readings[-1][0].upstream_share == pytest.approx(0.75)
        nvml.samples = None  # no kernel since the last read: its memory share this time
        collector.sample()
        assert readings[-1][0].upstream_share == pytest.approx(0.25)
        assert collector.sample().ok
    finally:
        collector.close()
