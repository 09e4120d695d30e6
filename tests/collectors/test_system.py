"""Host values against psutil, and the upstream process found for a real child server."""

from __future__ import annotations

import os
import signal

import psutil
import pytest

from proxy.collectors.locator import UpstreamProcessLocator
from proxy.collectors.system import SystemCollector
from tests.collectors.helpers import Upstream
from tests.support.metrics import Scrape
from tests.support.wait import eventually

MiB = 1024 * 1024


def read(collector: SystemCollector) -> Scrape:
    sample = collector.sample()
    assert sample.ok, sample.error
    return Scrape(sample.families)


def test_host_memory_and_cpu_match_psutil() -> None:
    before = psutil.cpu_times()
    data = read(SystemCollector())
    after = psutil.cpu_times()
    vm = psutil.virtual_memory()
    assert data.value("infermeter_host_memory_total_bytes") == vm.total
    available = data.value("infermeter_host_memory_available_bytes")
    assert available is not None and abs(available - vm.available) < max(256 * MiB, 0.02 * vm.total)
    # CPU counters only grow: psutil's readings just before and after bracket ours.
    for mode in ("user", "system", "idle", "iowait"):
        seconds = data.value("infermeter_host_cpu_seconds_total", mode=mode)
        assert seconds is not None and getattr(before, mode) <= seconds <= getattr(after, mode), mode
    other = data.value("infermeter_host_cpu_seconds_total", mode="other")
    other_before = before.nice + before.irq + before.softirq + before.steal
    other_after = after.nice + after.irq + after.softirq + after.steal
    assert other is not None and other_before <= other <= other_after
    # Guest time is already inside user time on Linux: the modes must not count it twice.
    total = sum(data.value("infermeter_host_cpu_seconds_total", mode=m) or 0 for m in ("user", "system", "idle", "iowait", "other"))
    assert total <= sum(after) - after.guest - after.guest_nice + 1e-6


def test_upstream_process_is_found_by_its_port_with_its_children() -> None:
    with Upstream(args=("--children", "2", "--child-mb", "40")) as upstream:
        server = psutil.Process(upstream.pid)
        assert eventually(lambda: len(server.children()) == 2)
        tree = [server, *server.children()]
        assert eventually(lambda: sum(p.memory_info().rss for p in tree) > (server.memory_info().rss + 80 * MiB))
        collector = SystemCollector(UpstreamProcessLocator(f"http://localhost:{upstream.port}/v1"))
        data = read(collector)
        expected_rss = sum(p.memory_info().rss for p in tree)
        rss = data.value("infermeter_upstream_process_resident_memory_bytes")
        assert rss is not None and abs(rss - expected_rss) < 8 * MiB
        assert data.value("infermeter_upstream_process_start_time_seconds") == server.create_time()
        cpu = data.value("infermeter_upstream_process_cpu_seconds_total")
        own = sum(t.user + t.system for t in (p.cpu_times() for p in tree))
        assert cpu is not None and 0 < cpu <= own + 1e-6

        # A worker dying must not look like a counter reset to rate().
        tree[1].send_signal(signal.SIGKILL)
        assert eventually(lambda: tree[1].status() == psutil.STATUS_ZOMBIE if tree[1].is_running() else True)
        after = read(collector)
        cpu_after = after.value("infermeter_upstream_process_cpu_seconds_total")
        assert cpu_after is not None and cpu_after >= cpu
        rss_after = after.value("infermeter_upstream_process_resident_memory_bytes")
        assert rss_after is not None and rss_after < rss - 30 * MiB


def test_a_restarted_upstream_is_found_again() -> None:
    upstream = Upstream().start()
    try:
        locator = UpstreamProcessLocator(upstream.url, rescan_interval=0.1, tree_ttl=0.0)
        collector = SystemCollector(locator)
        first = read(collector).value("infermeter_upstream_process_start_time_seconds")
        assert first == psutil.Process(upstream.pid).create_time()
        upstream.kill()
        assert read(collector).value("infermeter_upstream_process_start_time_seconds") is None
        upstream.start()
        assert eventually(lambda: read(collector).value("infermeter_upstream_process_start_time_seconds") is not None)
        assert locator.pids() == frozenset({upstream.pid})
    finally:
        upstream.kill()


def test_upstream_pid_flag_wins_over_the_port() -> None:
    locator = UpstreamProcessLocator("http://192.0.2.1:8000", pid=os.getpid())
    data = read(SystemCollector(locator))
    assert data.value("infermeter_upstream_process_start_time_seconds") == psutil.Process().create_time()


@pytest.mark.parametrize("url", ["http://192.0.2.1:8000", "http://127.0.0.1:1"])
def test_no_process_series_when_the_upstream_is_not_a_local_listener(url: str) -> None:
    data = read(SystemCollector(UpstreamProcessLocator(url)))
    assert data.value("infermeter_host_memory_total_bytes") is not None
    assert not any(name.startswith("infermeter_upstream_process_") for name in data.names())


def test_the_simulator_is_found_by_its_port() -> None:
    with Upstream(simulator=True) as sim:
        data = read(SystemCollector(UpstreamProcessLocator(sim.url)))
        proc = psutil.Process(sim.pid)
        assert data.value("infermeter_upstream_process_start_time_seconds") == proc.create_time()
        rss = data.value("infermeter_upstream_process_resident_memory_bytes")
        expected = sum(p.memory_info().rss for p in [proc, *proc.children(recursive=True)])
        assert rss is not None and abs(rss - expected) < 8 * MiB
