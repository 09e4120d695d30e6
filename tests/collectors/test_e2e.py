"""Through the real proxy: readiness and 502s follow the upstream, collectors never block /metrics."""

from __future__ import annotations

import sys
import time
from collections.abc import Callable, Iterator

import httpx
import psutil
import pytest
from prometheus_client.parser import text_string_to_metric_families

from tests.collectors.fake_nvml import FakeGpu, FakeNvml
from tests.collectors.helpers import (
    Series,
    Upstream,
    series,
    value,
    wait_for,
)
from tests.support.servers import ChildProcess, ThreadServer, free_port


PROBE = 0.5


def metrics(url: str) -> Series:
    response = httpx.get(url + "/metrics", timeout=5)
    assert response.status_code == 200
    return series(text_string_to_metric_families(response.text))


def seconds_until(predicate: Callable[[], bool], timeout: float) -> float:
    started = time.monotonic()
    assert wait_for(predicate, timeout=timeout, step=0.01), f"not within {timeout} s"
    return time.monotonic() - started


def ready(url: str) -> int:
    return httpx.get(url + "/readyz", timeout=2).status_code


def test_upstream_killed_and_restarted_behind_infermeter_serve() -> None:
    sim = Upstream(simulator=True).start()
    try:
        port = free_port()
        args = ["serve", "--upstream", sim.url, "--port", str(port), "--probe-interval", str(PROBE),
                "--sample-interval", "0.2", "--log-level", "warning"]
        with ChildProcess(args, port=port) as proxy:
            seconds_until(lambda: ready(proxy.url) == 200, timeout=5)
            assert httpx.get(proxy.url + "/v1/models", timeout=5).status_code == 200
            assert wait_for(lambda: value(metrics(proxy.url), "infermeter_upstream_process_start_time_seconds") is not None)
            data = metrics(proxy.url)
            assert value(data, "infermeter_upstream_up") == 1
            assert value(data, "infermeter_upstream_process_start_time_seconds") == psutil.Process(sim.pid).create_time()
            assert value(data, "infermeter_host_memory_total_bytes") == psutil.virtual_memory().total
            assert value(data, "infermeter_collector_success", collector="system") == 1
            assert value(data, "infermeter_collector_success", collector="upstream") == 1

            sim.kill()
            # Two probe intervals, plus a little for this polling loop on a loaded machine.
            took = seconds_until(lambda: ready(proxy.url) == 503, timeout=2 * PROBE + 0.25)
            assert took <= 2 * PROBE + 0.25
            response = httpx.post(proxy.url + "/v1/chat/completions", json={"model": "m", "messages": []}, timeout=5)
            assert response.status_code == 502
            down = metrics(proxy.url)
            assert value(down, "infermeter_upstream_up") == 0
            assert value(down, "infermeter_upstream_uptime_seconds") == 0
            # The process is gone: its series go with it, the proxy's collectors keep working.
            assert wait_for(lambda: value(metrics(proxy.url), "infermeter_upstream_process_start_time_seconds") is None)

            sim.start()
            restarted = time.monotonic()
            seconds_until(lambda: ready(proxy.url) == 200, timeout=2 * PROBE + 0.5)
            up = metrics(proxy.url)
            uptime = value(up, "infermeter_upstream_uptime_seconds")
            assert uptime is not None and uptime <= time.monotonic() - restarted + 0.05
            assert httpx.get(proxy.url + "/v1/models", timeout=5).status_code == 200
            assert wait_for(
                lambda: value(metrics(proxy.url), "infermeter_upstream_process_start_time_seconds")
                == psutil.Process(sim.pid).create_time()
            )
    finally:
        sim.kill()


@pytest.fixture
def hung_gpu(monkeypatch: pytest.MonkeyPatch) -> Iterator[FakeGpu]:
    """The proxy's GPU collector imports pynvml by name: hand it a GPU that hangs."""
    gpu = FakeGpu(uuid="GPU-hung", utilization=30, hang_in="nvmlDeviceGetTemperature")
    monkeypatch.setitem(sys.modules, "pynvml", FakeNvml([gpu]))
    yield gpu
    gpu.release.set()


def test_metrics_answer_at_once_while_the_gpu_collector_hangs(
    hung_gpu: FakeGpu, sim: ThreadServer, start_proxy: Callable[..., ThreadServer]
) -> None:
    proxy = start_proxy(sim.url, collectors=("system", "gpu", "upstream"), sample_interval=0.1, probe_interval=0.2)
    assert wait_for(lambda: value(metrics(proxy.url), "infermeter_collector_success", collector="gpu") == 0, timeout=5)
    for _ in range(5):
        started = time.perf_counter()
        data = metrics(proxy.url)
        assert time.perf_counter() - started < 1.0
        assert value(data, "infermeter_collector_success", collector="gpu") == 0
        assert value(data, "infermeter_collector_success", collector="system") == 1
    assert wait_for(lambda: ready(proxy.url) == 200, timeout=5)
    assert httpx.get(proxy.url + "/v1/models", timeout=5).status_code == 200
