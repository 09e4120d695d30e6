"""The sampler: a hung or failing collector never stalls or breaks a scrape.

Time is the sampler's injected clock, moved by the test, and reads are handed out by
``tick()`` as the scheduler would: ages, deadlines and durations are exact, not bounds
on a shared machine's wall clock. Only the scheduler thread itself runs on real time.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Iterator, Sequence

import pytest
from prometheus_client import CollectorRegistry
from prometheus_client.metrics_core import GaugeMetricFamily, Metric

from proxy.collectors.base import Sample, SyncCollector
from proxy.collectors.cached import CachedCollector, StatusCollector
from proxy.collectors.gpu import GpuCollector
from proxy.collectors.sampler import Sampler, next_tick
from tests.collectors.fake_nvml import FakeGpu, FakeNvml
from tests.support.metrics import render
from tests.support.wait import eventually

UUID = "GPU-abcdef01-2345-6789-abcd-ef0123456789"


class Clock:
    """The sampler's time, moved only by the test."""

    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now

    def advance(self, seconds: float) -> None:
        self.now += seconds


class Scripted:
    """A collector whose next read returns, raises, or blocks, as the test says."""

    name = "scripted"

    def __init__(self) -> None:
        self.reads = 0
        self.fail: str | None = None
        self.block = threading.Event()
        self.block.set()

    def describe(self) -> Sequence[Metric]:
        return [GaugeMetricFamily("test_reads", "reads so far")]

    def sample(self) -> Sample:
        self.block.wait(30)
        self.reads += 1
        if self.fail is not None:
            raise RuntimeError(self.fail)
        return Sample((GaugeMetricFamily("test_reads", "reads so far", value=self.reads),))

    def close(self) -> None:
        pass


def read(sampler: Sampler, name: str) -> None:
    """One tick, and the read it started returned."""
    sampler.tick()
    assert eventually(lambda: sampler.idle(name)), f"{name}: the read did not return"


def register(sampler: Sampler, *collectors: SyncCollector) -> CollectorRegistry:
    registry = CollectorRegistry()
    for collector in collectors:
        registry.register(CachedCollector(sampler, collector))
    registry.register(StatusCollector(lambda: [(n, sampler.status(n)) for n in sampler.names]))
    return registry


@pytest.fixture
def fake_gpu() -> Iterator[FakeGpu]:
    gpu = FakeGpu(uuid=UUID, utilization=40, temperature=50)
    yield gpu
    gpu.release.set()  # let a hung read finish so its thread ends


def test_a_hung_nvml_call_does_not_stall_scrapes(fake_gpu: FakeGpu, caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.INFO, logger="infermeter.collectors")
    clock = Clock()
    gpu = GpuCollector(nvml=FakeNvml([fake_gpu]))
    sampler = Sampler([gpu], interval=1.0, deadline=2.0, clock=clock)
    registry = register(sampler, gpu)
    sampler.start(schedule=False)
    try:
        read(sampler, "gpu")
        assert render(registry).value("infermeter_collector_success", collector="gpu") == 1
        fake_gpu.temperature = 99
        fake_gpu.hang_in = "nvmlDeviceGetTemperature"
        clock.advance(1.0)
        sampler.tick()  # this read hangs in the driver
        clock.advance(1.5)
        data = render(registry)
        assert data.value("infermeter_collector_success", collector="gpu") == 1, "within its deadline"
        clock.advance(1.0)
        # Past the deadline: failing, and each scrape answers from the last good sample
        # (a scrape that waited for the read would not return before the release below).
        for _ in range(3):
            sampler.tick()  # no second read piles up behind the hung one; logged once
            data = render(registry)
            assert data.value("infermeter_collector_success", collector="gpu") == 0
            assert data.value("infermeter_collector_duration_seconds", collector="gpu") == pytest.approx(2.5)
            assert data.value("infermeter_gpu_temperature_celsius", gpu="0", uuid=UUID) == 50
            assert data.value("infermeter_gpu_utilization_ratio", gpu="0", uuid=UUID) == pytest.approx(0.4)
        clock.advance(0.5)
        fake_gpu.hang_in = None
        fake_gpu.release.set()
        assert eventually(lambda: sampler.idle("gpu"))
        data = render(registry)
        assert data.value("infermeter_gpu_temperature_celsius", gpu="0", uuid=UUID) == 99
        assert data.value("infermeter_collector_success", collector="gpu") == 1
        assert data.value("infermeter_collector_duration_seconds", collector="gpu") == pytest.approx(3.0)
    finally:
        sampler.stop()
    messages = [r.getMessage() for r in caplog.records]
    assert messages.count("collector gpu: a read has run 2.5 s, past its 2.0 s deadline; serving its last good "
                          "sample until it returns") == 1, messages
    assert messages.count("collector gpu recovered (last read took 3.00 s)") == 1, messages


def test_a_hung_first_read_gets_more_patience_before_it_is_logged(fake_gpu: FakeGpu,
                                                                  caplog: pytest.LogCaptureFixture) -> None:
    # nvmlInit may take seconds on GPUs without persistence mode: failing, but not "hung".
    caplog.set_level(logging.INFO, logger="infermeter.collectors")
    clock = Clock()
    fake_gpu.hang_in = "nvmlDeviceGetUtilizationRates"
    sampler = Sampler([GpuCollector(nvml=FakeNvml([fake_gpu]))], interval=1.0, deadline=2.0, clock=clock)
    sampler.start(schedule=False)
    try:
        sampler.tick()
        clock.advance(9.0)
        sampler.tick()
        assert sampler.status("gpu").success is False
        assert not any("deadline" in r.getMessage() for r in caplog.records)
        clock.advance(1.5)
        sampler.tick()
        assert sum("a read has run 10.5 s" in r.getMessage() for r in caplog.records) == 1
    finally:
        fake_gpu.release.set()
        sampler.stop()


def test_stop_does_not_wait_for_a_hung_read(fake_gpu: FakeGpu) -> None:
    fake_gpu.hang_in = "nvmlDeviceGetUtilizationRates"
    sampler = Sampler([GpuCollector(nvml=FakeNvml([fake_gpu]))], interval=1.0, clock=Clock())
    sampler.start(schedule=False)
    sampler.tick()
    assert eventually(lambda: not sampler.idle("gpu"))
    started = time.perf_counter()
    sampler.stop(timeout=0.5)
    # The read never returns: stop gives up after its timeout instead of joining forever.
    assert time.perf_counter() - started < 10


def test_a_failing_read_keeps_the_last_good_sample_and_logs_once(caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.INFO, logger="infermeter.collectors")
    collector = Scripted()
    clock = Clock()
    sampler = Sampler([collector], interval=1.0, clock=clock)
    registry = register(sampler, collector)
    sampler.start(schedule=False)
    try:
        for _ in range(2):
            read(sampler, "scripted")
            clock.advance(1.0)
        assert render(registry).value("test_reads") == 2
        collector.fail = "source broke"
        for _ in range(5):
            read(sampler, "scripted")
            clock.advance(1.0)
            data = render(registry)
            assert data.value("test_reads") == 2
            assert data.value("infermeter_collector_success", collector="scripted") == 0
        collector.fail = "source broke differently"
        read(sampler, "scripted")
        collector.fail = None
        read(sampler, "scripted")
        data = render(registry)
        assert data.value("infermeter_collector_success", collector="scripted") == 1
        assert data.value("test_reads") == 9
    finally:
        sampler.stop()
    messages = [r.getMessage() for r in caplog.records]
    assert messages == ["collector scripted failing: RuntimeError: source broke",
                        "collector scripted failing: RuntimeError: source broke differently",
                        "collector scripted recovered (last read took 0.00 s)"], messages


def test_a_sample_too_old_is_no_longer_served() -> None:
    collector = Scripted()
    clock = Clock()
    sampler = Sampler([collector], interval=1.0, deadline=2.0, stale_after=30.0, clock=clock)
    registry = register(sampler, collector)
    sampler.start(schedule=False)
    try:
        read(sampler, "scripted")
        collector.block.clear()
        clock.advance(1.0)
        sampler.tick()  # blocks
        clock.advance(29.0)
        assert render(registry).value("test_reads") == 1, "30 s old: still served"
        clock.advance(0.5)
        data = render(registry)
        assert data.value("test_reads") is None
        assert data.value("infermeter_collector_success", collector="scripted") == 0
    finally:
        collector.block.set()
        sampler.stop()


@pytest.mark.parametrize("due, now, expected", [
    (10.0, 10.0, 11.0),   # on time: one interval later
    (10.0, 10.9, 11.0),   # a little late: the cadence holds
    (10.0, 11.0, 11.0),
    (10.0, 13.5, 14.5),   # stalled past several ticks: skipped, not replayed in a burst
])
def test_next_tick(due: float, now: float, expected: float) -> None:
    assert next_tick(due, now, 1.0) == expected


def test_the_scheduler_reads_every_interval() -> None:
    # Real time: the thread that calls tick() keeps reading, on the real clock.
    collector = Scripted()
    sampler = Sampler([collector], interval=0.02)
    sampler.start()
    try:
        assert eventually(lambda: collector.reads >= 5)
    finally:
        sampler.stop()
