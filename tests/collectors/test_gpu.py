"""The GPU collector against a fake NVML with pynvml's real signatures, units and errors."""

from __future__ import annotations

import inspect
import logging
import os
import sys
import time

import pynvml  # type: ignore[import-untyped]
import pytest
from prometheus_client import CollectorRegistry

from proxy.collectors import build_collectors
from proxy.collectors.gpu import GpuCollector
from proxy.collectors.locator import UpstreamProcessLocator
from proxy.config import Settings
from tests.collectors.fake_nvml import FakeGpu, FakeNvml
from tests.support.metrics import Scrape, render
from tests.support.wait import eventually

UUID0 = "GPU-11111111-2222-3333-4444-555555555555"
UUID1 = "GPU-66666666-7777-8888-9999-000000000000"


class Clock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


def test_fake_follows_pynvml_signatures() -> None:
    fake = FakeNvml([])
    for name, method in inspect.getmembers(fake, inspect.ismethod):
        if name.startswith("nvml"):
            real = list(inspect.signature(getattr(pynvml, name)).parameters)
            assert list(inspect.signature(method).parameters) == real, name


def test_units_are_converted_to_base_units() -> None:
    gpu = FakeGpu(
        uuid=UUID0, utilization=37, memory_used=3 * 1024**3, power_mw=123_456, energy_mj=5_000_250,
        temperature=64, sm_clock_mhz=1410,
    )
    sample = GpuCollector(nvml=FakeNvml([gpu], driver="550.54.15")).sample()
    assert sample.ok, sample.error
    data = Scrape(sample.families)
    labels = {"gpu": "0", "uuid": UUID0}
    assert data.value("infermeter_gpu_info", name="NVIDIA H100 80GB HBM3", driver_version="550.54.15", **labels) == 1
    assert data.value("infermeter_gpu_utilization_ratio", **labels) == pytest.approx(0.37)
    assert data.value("infermeter_gpu_memory_used_bytes", **labels) == 3 * 1024**3
    assert data.value("infermeter_gpu_memory_total_bytes", **labels) == 80 * 1024**3
    assert data.value("infermeter_gpu_power_watts", **labels) == pytest.approx(123.456)
    assert data.value("infermeter_gpu_energy_joules_total", **labels) == pytest.approx(5000.25)
    assert data.value("infermeter_gpu_temperature_celsius", **labels) == 64
    assert data.value("infermeter_gpu_sm_clock_hertz", **labels) == 1.41e9
    # The first reading has no interval behind it yet.
    assert data.value("infermeter_gpu_busy_seconds_total", **labels) == 0


def test_busy_seconds_integrate_a_known_utilization_schedule() -> None:
    clock = Clock()
    # (seconds since start, utilization NVML reports then, in percent)
    schedule = [(0.0, 0), (1.0, 50), (3.0, 100), (3.5, 20), (10.0, 0), (12.0, 75)]
    current = {"percent": 0}
    collector = GpuCollector(nvml=FakeNvml([FakeGpu(uuid=UUID0, utilization=lambda: current["percent"])]), clock=clock)
    busy: list[float | None] = []
    start = clock.now
    for offset, percent in schedule:
        clock.now = start + offset
        current["percent"] = percent
        data = Scrape(collector.sample().families)
        busy.append(data.value("infermeter_gpu_busy_seconds_total", gpu="0", uuid=UUID0))
    # Each reading covers the interval that ended with it: 0.5*1 + 1*2 + 0.2*0.5 + 0*6.5 + 0.75*2.
    assert busy == pytest.approx([0.0, 0.5, 2.5, 2.6, 2.6, 4.1])
    # rate() over [1 s, 3 s] is the true average there: fully busy.
    assert busy[1] is not None and busy[2] is not None
    assert (busy[2] - busy[1]) / 2.0 == pytest.approx(1.0)


def test_a_failing_device_leaves_the_others_exported() -> None:
    good = FakeGpu(uuid=UUID0, utilization=10)
    lost = FakeGpu(uuid=UUID1, utilization=90)
    nvml = FakeNvml([good, lost])
    collector = GpuCollector(nvml=nvml)
    assert collector.sample().ok
    lost.errors["*"] = pynvml.NVML_ERROR_GPU_IS_LOST
    sample = collector.sample()
    assert not sample.ok
    assert sample.error is not None and "gpu 1" in sample.error and "GPU is lost" in sample.error
    data = Scrape(sample.families)
    assert data.value("infermeter_gpu_utilization_ratio", gpu="0", uuid=UUID0) == pytest.approx(0.1)
    assert data.value("infermeter_gpu_utilization_ratio", gpu="1", uuid=UUID1) is None
    # The inventory stays: the lost GPU is still known, only its readings are gone.
    assert data.value("infermeter_gpu_info", gpu="1", uuid=UUID1, name=lost.name, driver_version=nvml.driver) == 1


def test_unsupported_readings_are_left_out_without_failing() -> None:
    gpu = FakeGpu(uuid=UUID0, power_mw=250_000, errors={"nvmlDeviceGetTotalEnergyConsumption": pynvml.NVML_ERROR_NOT_SUPPORTED,
                                                      "nvmlDeviceGetClockInfo": pynvml.NVML_ERROR_NOT_SUPPORTED})
    nvml = FakeNvml([gpu])
    clock = Clock()
    collector = GpuCollector(nvml=nvml, clock=clock)
    first = collector.sample()
    clock.now += 2.0
    second = collector.sample()
    assert first.ok and second.ok
    data = Scrape(second.families)
    assert data.value("infermeter_gpu_sm_clock_hertz", gpu="0", uuid=UUID0) is None
    # Without an energy counter (GPUs before Volta) energy is power integrated over time.
    assert data.value("infermeter_gpu_energy_joules_total", gpu="0", uuid=UUID0) == pytest.approx(500.0)
    # A call NVML does not support on this GPU is not asked again every second.
    assert nvml.calls["nvmlDeviceGetClockInfo"] == 1


def test_upstream_gpu_memory_counts_only_the_upstream_tree() -> None:
    me = os.getpid()
    gpu = FakeGpu(uuid=UUID0, processes=[(me, 6 * 1024**3), (2**22 + 7, 9 * 1024**3), (me + 0, None)])
    locator = UpstreamProcessLocator("http://127.0.0.1:1", pid=me)
    data = Scrape(GpuCollector(nvml=FakeNvml([gpu]), locator=locator).sample().families)
    assert data.value("infermeter_upstream_gpu_memory_used_bytes", gpu="0", uuid=UUID0) == 6 * 1024**3


def test_upstream_gpu_memory_is_absent_while_the_process_is_unknown() -> None:
    gpu = FakeGpu(uuid=UUID0, processes=[(os.getpid(), 1024)])
    locator = UpstreamProcessLocator("http://192.0.2.1:8000")  # TEST-NET: never this host
    data = Scrape(GpuCollector(nvml=FakeNvml([gpu]), locator=locator).sample().families)
    assert "infermeter_upstream_gpu_memory_used_bytes" not in data.names()


def test_init_failure_is_retried_after_the_retry_interval() -> None:
    clock = Clock()
    nvml = FakeNvml([FakeGpu(uuid=UUID0)], init_error=pynvml.NVML_ERROR_DRIVER_NOT_LOADED)
    collector = GpuCollector(nvml=nvml, clock=clock, retry_interval=30.0)
    sample = collector.sample()
    assert not sample.ok and sample.families == ()
    assert sample.error is not None and "Driver Not Loaded" in sample.error and "--collectors" in sample.error
    nvml.init_error = None
    clock.now += 10
    assert not collector.sample().ok  # not retried yet: no NVML call every second
    clock.now += 25
    assert collector.sample().ok


def test_nvml_breaking_mid_run_reinitialises() -> None:
    clock = Clock()
    gpu = FakeGpu(uuid=UUID0)
    nvml = FakeNvml([gpu])
    collector = GpuCollector(nvml=nvml, clock=clock, retry_interval=5.0)
    assert collector.sample().ok
    nvml.initialised = False  # e.g. the driver was reloaded under us
    sample = collector.sample()
    assert not sample.ok and sample.error is not None and "initialising again" in sample.error
    clock.now += 6
    assert collector.sample().ok
    assert nvml.initialised


def test_missing_pynvml_module_is_reported(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setitem(sys.modules, "pynvml", None)
    sample = GpuCollector().sample()
    assert not sample.ok and sample.error is not None and "nvidia-ml-py" in sample.error


@pytest.mark.skipif(os.path.exists("/dev/nvidiactl"), reason="this host has an NVIDIA driver")
def test_real_pynvml_without_a_driver_fails_cleanly_and_logs_once(caplog: pytest.LogCaptureFixture) -> None:
    """Here NVML is really absent: success 0, one clear log line, the rest keeps working."""
    caplog.set_level(logging.INFO, logger="infermeter.collectors")
    registry = CollectorRegistry()
    collectors = build_collectors(
        Settings(upstream="http://192.0.2.1:8000", collectors=("system", "gpu"), sample_interval=0.05), registry
    )
    collectors.sampler.start()
    try:
        assert eventually(lambda: render(registry).value("infermeter_collector_success", collector="system") == 1)
        time.sleep(0.3)  # several more reads of the failing collector
        data = render(registry)
    finally:
        collectors.sampler.stop()
    assert data.value("infermeter_collector_success", collector="gpu") == 0
    assert data.value("infermeter_host_memory_total_bytes") is not None
    assert not any(name.startswith("infermeter_gpu_") for name in data.names())
    lines = [r.getMessage() for r in caplog.records if "collector gpu" in r.getMessage()]
    assert len(lines) == 1, lines
    assert "NVML unavailable" in lines[0] and "NVML Shared Library Not Found" in lines[0]
