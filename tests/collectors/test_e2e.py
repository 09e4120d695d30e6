"""Through the real proxy: readiness and 502s follow the upstream, collectors never block /metrics."""

from __future__ import annotations

import sys
import time
from collections.abc import Callable, Iterator

import httpx
import psutil
import pytest

from tests.collectors.fake_nvml import FakeGpu, FakeNvml
from tests.collectors.helpers import Upstream
from tests.support.metrics import scrape
from tests.support.servers import ChildProcess, ThreadServer, free_port
from tests.support.wait import eventually, seconds_until


PROBE = 0.5


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
            assert eventually(lambda: scrape(proxy.url).value("infermeter_upstream_process_start_time_seconds") is not None)
            data = scrape(proxy.url)
            assert data.value("infermeter_upstream_up") == 1
            assert data.value("infermeter_upstream_process_start_time_seconds") == psutil.Process(sim.pid).create_time()
            assert data.value("infermeter_host_memory_total_bytes") == psutil.virtual_memory().total
            assert data.value("infermeter_collector_success", collector="system") == 1
            assert data.value("infermeter_collector_success", collector="upstream") == 1

            sim.kill()
            # Two probe intervals, plus a little for this polling loop on a loaded machine.
            took = seconds_until(lambda: ready(proxy.url) == 503, timeout=2 * PROBE + 0.25)
            assert took <= 2 * PROBE + 0.25
            response = httpx.post(proxy.url + "/v1/chat/completions", json={"model": "m", "messages": []}, timeout=5)
            assert response.status_code == 502
            down = scrape(proxy.url)
            assert down.value("infermeter_upstream_up") == 0
            assert down.value("infermeter_upstream_uptime_seconds") == 0
            # The process is gone: its series go with it, the proxy's collectors keep working.
            assert eventually(lambda: scrape(proxy.url).value("infermeter_upstream_process_start_time_seconds") is None)

            sim.start()
            restarted = time.monotonic()
            seconds_until(lambda: ready(proxy.url) == 200, timeout=2 * PROBE + 0.5)
            up = scrape(proxy.url)
            uptime = up.value("infermeter_upstream_uptime_seconds")
            assert uptime is not None and uptime <= time.monotonic() - restarted + 0.05
            assert httpx.get(proxy.url + "/v1/models", timeout=5).status_code == 200
            assert eventually(
                lambda: scrape(proxy.url).value("infermeter_upstream_process_start_time_seconds")
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
    assert eventually(lambda: scrape(proxy.url).value("infermeter_collector_success", collector="gpu") == 0, timeout=5)
    for _ in range(5):
        started = time.perf_counter()
        data = scrape(proxy.url)
        assert time.perf_counter() - started < 1.0
        assert data.value("infermeter_collector_success", collector="gpu") == 0
        assert data.value("infermeter_collector_success", collector="system") == 1
    assert eventually(lambda: ready(proxy.url) == 200, timeout=5)
    assert httpx.get(proxy.url + "/v1/models", timeout=5).status_code == 200
