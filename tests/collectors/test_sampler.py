"""The sampler thread: a hung or failing collector never stalls or breaks a scrape."""

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
from proxy.collectors.sampler import Sampler
from tests.collectors.fake_nvml import FakeGpu, FakeNvml
from tests.support.metrics import render
from tests.support.wait import eventually

UUID = "GPU-abcdef01-2345-6789-abcd-ef0123456789"


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
    gpu = GpuCollector(nvml=FakeNvml([fake_gpu]))
    sampler = Sampler([gpu], interval=0.05, deadline=0.3)
    registry = register(sampler, gpu)
    sampler.start()
    try:
        assert eventually(lambda: render(registry).value("infermeter_collector_success", collector="gpu") == 1)
        fake_gpu.temperature = 99
        fake_gpu.hang_in = "nvmlDeviceGetTemperature"
        assert eventually(lambda: render(registry).value("infermeter_collector_success", collector="gpu") == 0)
        # Scrapes while the read hangs: each answers at once with the last good sample.
        for _ in range(5):
            started = time.perf_counter()
            data = render(registry)
            assert time.perf_counter() - started < 1.0
            assert data.value("infermeter_gpu_temperature_celsius", gpu="0", uuid=UUID) == 50
            assert data.value("infermeter_gpu_utilization_ratio", gpu="0", uuid=UUID) == pytest.approx(0.4)
            time.sleep(0.1)
        duration = data.value("infermeter_collector_duration_seconds", collector="gpu")
        assert duration is not None and duration > 0.3
        fake_gpu.hang_in = None
        fake_gpu.release.set()
        assert eventually(lambda: render(registry).value("infermeter_gpu_temperature_celsius", gpu="0", uuid=UUID) == 99)
        assert eventually(lambda: render(registry).value("infermeter_collector_success", collector="gpu") == 1)
    finally:
        sampler.stop()
    messages = [r.getMessage() for r in caplog.records]
    assert sum("past its 0.3 s deadline" in m for m in messages) == 1, messages
    assert sum("collector gpu recovered" in m for m in messages) == 1, messages


def test_stop_does_not_wait_for_a_hung_read(fake_gpu: FakeGpu) -> None:
    fake_gpu.hang_in = "nvmlDeviceGetUtilizationRates"
    sampler = Sampler([GpuCollector(nvml=FakeNvml([fake_gpu]))], interval=0.05)
    sampler.start()
    time.sleep(0.2)
    started = time.perf_counter()
    sampler.stop(timeout=0.5)
    assert time.perf_counter() - started < 1.5


def test_a_failing_read_keeps_the_last_good_sample_and_logs_once(caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.INFO, logger="infermeter.collectors")
    collector = Scripted()
    sampler = Sampler([collector], interval=0.02)
    registry = register(sampler, collector)
    sampler.start()
    try:
        assert eventually(lambda: (render(registry).value("test_reads") or 0) >= 2)
        collector.fail = "source broke"
        assert eventually(lambda: render(registry).value("infermeter_collector_success", collector="scripted") == 0)
        kept = render(registry).value("test_reads")
        failed_reads = collector.reads
        assert eventually(lambda: collector.reads >= failed_reads + 5)
        data = render(registry)
        assert data.value("test_reads") == kept
        assert data.value("infermeter_collector_success", collector="scripted") == 0
        collector.fail = None
        assert eventually(lambda: render(registry).value("infermeter_collector_success", collector="scripted") == 1)
        assert (render(registry).value("test_reads") or 0) > (kept or 0)
    finally:
        sampler.stop()
    messages = [r.getMessage() for r in caplog.records]
    assert messages.count("collector scripted failing: RuntimeError: source broke") == 1, messages
    assert sum(m.startswith("collector scripted recovered") for m in messages) == 1, messages


def test_a_sample_too_old_is_no_longer_served() -> None:
    collector = Scripted()
    sampler = Sampler([collector], interval=0.02, deadline=0.05, stale_after=0.3)
    registry = register(sampler, collector)
    sampler.start()
    try:
        assert eventually(lambda: render(registry).value("test_reads") is not None)
        collector.block.clear()
        assert eventually(lambda: render(registry).value("test_reads") is None, timeout=5)
        assert render(registry).value("infermeter_collector_success", collector="scripted") == 0
    finally:
        collector.block.set()
        sampler.stop()


def test_reads_follow_the_interval() -> None:
    collector = Scripted()
    sampler = Sampler([collector], interval=0.1)
    sampler.start()
    time.sleep(1.05)
    sampler.stop()
    # 11 ticks in 1.05 s; a loaded machine may lose a few, never gain.
    assert 7 <= collector.reads <= 12
