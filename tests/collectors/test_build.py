"""``build_collectors``: the metric contract of DESIGN.md section 6, flags, start and stop."""

from __future__ import annotations

import asyncio
import logging
import time
from pathlib import Path

import prometheus_client
import pynvml  # type: ignore[import-untyped]
import pytest
from prometheus_client import CollectorRegistry
from prometheus_client.parser import text_string_to_metric_families

from proxy.collectors.catalog import COLLECTORS, build_collectors
from proxy.config import KNOWN_COLLECTORS, Settings
from tests.collectors.fake_nvml import FakeGpu, FakeNvml
from tests.collectors.helpers import Upstream
from tests.support.metrics import render, scrape
from tests.support.servers import ChildProcess, ThreadServer
from tests.support.wait import eventually, wait_for

GPU = ("gpu", "uuid")
# Every series the collectors export, with its label names (DESIGN.md section 6).
CONTRACT: dict[str, tuple[str, tuple[str, ...]]] = {
    "infermeter_upstream_up": ("gauge", ()),
    "infermeter_upstream_uptime_seconds": ("gauge", ()),
    "infermeter_upstream_probe_duration_seconds": ("histogram", ()),
    "infermeter_upstream_probes": ("counter", ("result",)),
    "infermeter_upstream_process_resident_memory_bytes": ("gauge", ()),
    "infermeter_upstream_process_cpu_seconds": ("counter", ()),
    "infermeter_upstream_process_start_time_seconds": ("gauge", ()),
    "infermeter_host_memory_total_bytes": ("gauge", ()),
    "infermeter_host_memory_available_bytes": ("gauge", ()),
    "infermeter_host_cpu_seconds": ("counter", ("mode",)),
    "infermeter_gpu_info": ("gauge", (*GPU, "name", "driver_version")),
    "infermeter_gpu_utilization_ratio": ("gauge", GPU),
    "infermeter_gpu_busy_seconds": ("counter", GPU),
    "infermeter_gpu_memory_used_bytes": ("gauge", GPU),
    "infermeter_gpu_memory_total_bytes": ("gauge", GPU),
    "infermeter_gpu_power_watts": ("gauge", GPU),
    "infermeter_gpu_energy_joules": ("counter", GPU),
    "infermeter_gpu_temperature_celsius": ("gauge", GPU),
    "infermeter_gpu_sm_clock_hertz": ("gauge", GPU),
    "infermeter_upstream_gpu_memory_used_bytes": ("gauge", GPU),
    "infermeter_collector_success": ("gauge", ("collector",)),
    "infermeter_collector_duration_seconds": ("gauge", ("collector",)),
}


def test_every_series_of_the_contract_is_exported_with_its_labels() -> None:
    registry = CollectorRegistry()
    with Upstream() as upstream:
        gpu = FakeGpu(uuid="GPU-0", utilization=55, processes=[(upstream.pid, 2 * 1024**3)])
        settings = Settings(upstream=upstream.url, sample_interval=0.05, probe_interval=0.2)
        collectors = build_collectors(settings, registry, nvml=FakeNvml([gpu]))

        async def scenario() -> str:
            await collectors.start()
            try:
                await asyncio.to_thread(
                    eventually, lambda: render(registry).value("infermeter_upstream_gpu_memory_used_bytes", gpu="0", uuid="GPU-0") is not None
                )
                await asyncio.to_thread(eventually, collectors.upstream_ready)
                return prometheus_client.generate_latest(registry).decode()
            finally:
                await collectors.stop()

        text = asyncio.run(scenario())
    seen = {f.name: f for f in text_string_to_metric_families(text)}
    assert set(seen) == set(CONTRACT)
    for name, (kind, labels) in CONTRACT.items():
        family = seen[name]
        assert family.type == kind, name
        for sample in family.samples:
            assert set(sample.labels) - {"le"} == set(labels), sample
    modes = {s.labels["mode"] for s in seen["infermeter_host_cpu_seconds"].samples}
    assert modes == {"user", "system", "idle", "iowait", "other"}
    # The upstream here is no Ollama (/api/ps answers 404): the ollama collector is idle,
    # exports no series, and is healthy.
    collectors_seen = {s.labels["collector"] for s in seen["infermeter_collector_success"].samples}
    assert collectors_seen == {"system", "gpu", "upstream", "ollama"}
    assert all(s.value == 1 for s in seen["infermeter_collector_success"].samples)


def test_disabled_collectors_export_nothing_and_readiness_needs_no_probe() -> None:
    registry = CollectorRegistry()
    collectors = build_collectors(Settings(collectors=("system",)), registry, nvml=FakeNvml([FakeGpu(uuid="GPU-0")]))
    assert collectors.probe is None and collectors.upstream_ready()
    asyncio.run(collectors.start())
    try:
        assert eventually(lambda: render(registry).value("infermeter_collector_success", collector="system") == 1)
        data = render(registry)
    finally:
        asyncio.run(collectors.stop())
    assert data.series("infermeter_collector_success") == [{"collector": "system"}]
    assert not any(name.startswith(("infermeter_gpu_", "infermeter_upstream_up")) for name in data.names())

    none = CollectorRegistry()
    idle = build_collectors(Settings(collectors=()), none)
    asyncio.run(idle.start())
    asyncio.run(idle.stop())
    assert idle.upstream_ready() and not render(none).samples


def test_nothing_goes_to_the_global_registry_and_names_are_declared() -> None:
    before = set(prometheus_client.REGISTRY._names_to_collectors)
    registry = CollectorRegistry()
    build_collectors(Settings(), registry)
    assert set(prometheus_client.REGISTRY._names_to_collectors) == before
    # describe() declares every name, so a second set in one registry is refused, not merged.
    with pytest.raises(ValueError, match="Duplicated timeseries"):
        build_collectors(Settings(), registry)


def test_stop_is_prompt_while_a_gpu_read_hangs() -> None:
    gpu = FakeGpu(uuid="GPU-0", hang_in="nvmlDeviceGetPowerUsage")
    collectors = build_collectors(
        Settings(upstream="http://192.0.2.1:8000", collectors=("gpu",), sample_interval=0.05), CollectorRegistry(),
        nvml=FakeNvml([gpu]),
    )

    async def scenario() -> float:
        await collectors.start()
        await asyncio.sleep(0.2)
        started = time.perf_counter()
        await collectors.stop()
        return time.perf_counter() - started

    try:
        assert asyncio.run(scenario()) < 3.0
    finally:
        gpu.release.set()


def test_the_collector_table_is_the_flag_contract() -> None:
    # One table builds what --collectors names; the flag's accepted values are its keys.
    assert tuple(COLLECTORS) == KNOWN_COLLECTORS


def _gpu_success(nvml: FakeNvml, collectors: tuple[str, ...] | None) -> tuple[float | None, bool]:
    """(collector_success of gpu, whether any GPU series was exported) after one read."""
    registry = CollectorRegistry()
    built = build_collectors(Settings(upstream="http://192.0.2.1:8000", collectors=collectors, sample_interval=0.05),
                             registry, nvml=nvml)
    asyncio.run(built.start())
    try:
        assert eventually(lambda: render(registry).value("infermeter_collector_duration_seconds", collector="gpu") != 0)
        data = render(registry)
    finally:
        asyncio.run(built.stop())
    return data.value("infermeter_collector_success", collector="gpu"), any(n.startswith("infermeter_gpu_") for n in data.names())


@pytest.mark.parametrize("code", [pynvml.NVML_ERROR_LIBRARY_NOT_FOUND, pynvml.NVML_ERROR_DRIVER_NOT_LOADED])
def test_no_driver_is_no_gpu_by_default_and_a_failure_when_asked_for(code: int, caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.INFO, logger="infermeter.collectors")
    assert _gpu_success(FakeNvml([], init_error=code), None) == (1, False)
    lines = [(r.levelno, r.getMessage()) for r in caplog.records if "gpu" in r.getMessage().lower()]
    assert lines == [(logging.INFO, "no NVIDIA driver: GPU series off")]
    caplog.clear()
    assert _gpu_success(FakeNvml([], init_error=code), ("system", "gpu")) == (0, False)
    assert [r.levelno for r in caplog.records if "collector gpu failing: NVML unavailable" in r.getMessage()] == [logging.WARNING]


def test_other_nvml_failures_still_fail_by_default() -> None:
    # A driver that is there but will not start is a fault to see, not a host without a GPU.
    assert _gpu_success(FakeNvml([], init_error=pynvml.NVML_ERROR_NO_PERMISSION), None) == (0, False)
    assert _gpu_success(FakeNvml([FakeGpu(uuid="GPU-0")]), None) == (1, True)


def _driver_here() -> bool:
    try:
        pynvml.nvmlInit()
    except pynvml.NVMLError:
        return False
    pynvml.nvmlShutdown()
    return True


@pytest.mark.skipif(_driver_here(), reason="an NVIDIA driver is loaded here: there is a GPU to read")
def test_serve_starts_clean_on_a_host_without_a_driver(sim: ThreadServer, tmp_path: Path) -> None:
    """``infermeter serve`` with the default collectors: one INFO line, no warning, success 1."""
    log = tmp_path / "serve.log"
    with ChildProcess(["serve", "--upstream", sim.url, "--port", "{port}", "--sample-interval", "0.2"], log=log) as proxy:
        wait_for(lambda: scrape(proxy.url).value("infermeter_collector_duration_seconds", collector="gpu") != 0,
                 "the gpu collector's first read", timeout=10)
        data = scrape(proxy.url)
    text = log.read_text()
    assert data.value("infermeter_collector_success", collector="gpu") == 1
    assert not any(n.startswith("infermeter_gpu_") for n in data.names())
    assert text.count("no NVIDIA driver: GPU series off") == 1, text
    assert " INFO infermeter.collectors: no NVIDIA driver: GPU series off" in text
    assert "WARNING" not in text and "ERROR" not in text, text


@pytest.mark.skipif(_driver_here(), reason="an NVIDIA driver is loaded here: there is a GPU to read")
def test_serve_with_gpu_named_says_why_it_fails(sim: ThreadServer, tmp_path: Path) -> None:
    log = tmp_path / "serve.log"
    with ChildProcess(["serve", "--upstream", sim.url, "--port", "{port}", "--collectors", "gpu"], log=log) as proxy:
        wait_for(lambda: scrape(proxy.url).value("infermeter_collector_duration_seconds", collector="gpu") != 0,
                 "the gpu collector's first read", timeout=10)
        assert scrape(proxy.url).value("infermeter_collector_success", collector="gpu") == 0
    text = log.read_text()
    assert "WARNING infermeter.collectors: collector gpu failing: NVML unavailable" in text, text
    assert "no NVIDIA driver: GPU series off" not in text
