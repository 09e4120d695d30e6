"""The upstream probe against a real server in a child process: down, up, uptime, logs."""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Callable, Coroutine
from typing import Any

import pytest
from prometheus_client import CollectorRegistry

from proxy.collectors.upstream import UpstreamProbe
from tests.collectors.helpers import Upstream
from tests.support.metrics import Scrape, render

INTERVAL = 0.5


def probe_registry(probe: UpstreamProbe) -> CollectorRegistry:
    registry = CollectorRegistry()
    registry.register(probe)
    return registry


async def until(predicate: Callable[[], bool], timeout: float) -> float:
    """Seconds until ``predicate`` held; fails the test after ``timeout``."""
    started = time.monotonic()
    while not predicate():
        if time.monotonic() - started > timeout:
            raise AssertionError(f"not within {timeout} s")
        await asyncio.sleep(0.01)
    return time.monotonic() - started


async def in_thread(call: Callable[[], object]) -> None:
    await asyncio.to_thread(call)


def run(scenario: Callable[[], Coroutine[Any, Any, None]]) -> None:
    asyncio.run(scenario())


def test_kill_and_restart(caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.INFO)
    upstream = Upstream(simulator=True)

    async def scenario() -> None:
        await in_thread(upstream.start)
        probe = UpstreamProbe(upstream.url, interval=INTERVAL, timeout=1.0)
        registry = probe_registry(probe)

        def data() -> Scrape:
            return render(registry)

        await probe.start()
        try:
            await until(probe.ready, timeout=5)
            assert probe.path == "/health"
            assert data().value("infermeter_upstream_up") == 1
            await asyncio.sleep(3 * INTERVAL)
            uptime_before = data().value("infermeter_upstream_uptime_seconds")
            assert uptime_before is not None and uptime_before >= 2 * INTERVAL

            await in_thread(upstream.kill)
            took = await until(lambda: data().value("infermeter_upstream_up") == 0, timeout=2 * INTERVAL)
            assert not probe.ready()
            assert data().value("infermeter_upstream_uptime_seconds") == 0
            await asyncio.sleep(2 * INTERVAL)  # several failed probes, still one "down" line

            await in_thread(upstream.start)
            restarted = time.monotonic()
            await until(probe.ready, timeout=2 * INTERVAL + 0.5)
            uptime = data().value("infermeter_upstream_uptime_seconds")
            assert uptime is not None and uptime <= time.monotonic() - restarted + 0.05
            await asyncio.sleep(2 * INTERVAL)
            final = data()
        finally:
            await probe.stop()
            await in_thread(upstream.kill)
        assert took <= 2 * INTERVAL
        assert (final.value("infermeter_upstream_probes_total", result="failure") or 0) >= 2
        assert (final.value("infermeter_upstream_probes_total", result="success") or 0) >= 6
        count = final.value("infermeter_upstream_probe_duration_seconds_count")
        assert count == sum(final.value("infermeter_upstream_probes_total", result=r) or 0 for r in ("success", "failure"))

    run(scenario)
    lines = [r.getMessage() for r in caplog.records if r.name == "infermeter.collectors"]
    ups = [m for m in lines if " is up " in m]
    downs = [m for m in lines if " is down " in m]
    assert len(ups) == 2 and len(downs) == 1, lines
    assert "ConnectError" in downs[0]
    # Nor does any library log a line per probe: the two httpx lines are this test's own
    # readiness checks after each start; the dozen probes add none.
    library = [r.getMessage() for r in caplog.records if r.name.startswith(("httpx", "httpcore"))]
    assert len(library) <= 2, library


def test_probe_paths_are_under_the_upstream_base_path() -> None:
    upstream = Upstream(args=("--ok-paths", "/base/v1/models"), ready_path="/base/v1/models")

    async def scenario() -> None:
        await in_thread(upstream.start)
        probe = UpstreamProbe(upstream.url + "/base/", interval=0.2, timeout=1.0)
        await probe.start()
        try:
            await until(probe.ready, timeout=3)
            assert probe.path == "/v1/models"
        finally:
            await probe.stop()
            await in_thread(upstream.kill)

    run(scenario)


def test_discovers_the_first_path_that_answers_and_waits_for_one() -> None:
    upstream = Upstream(args=("--ok-paths", "/api/tags,/"), ready_path="/api/tags")

    async def scenario() -> None:
        probe = UpstreamProbe(upstream.url, interval=0.2, timeout=1.0)
        await probe.start()
        try:
            await asyncio.sleep(0.5)  # nothing listens yet: down, no path chosen
            assert not probe.ready() and probe.path is None
            await in_thread(upstream.start)
            await until(probe.ready, timeout=3)
            assert probe.path == "/api/tags"
        finally:
            await probe.stop()
            await in_thread(upstream.kill)

    run(scenario)


def test_a_non_2xx_answer_is_down_and_a_given_path_is_kept() -> None:
    upstream = Upstream(args=("--ok-paths", "/health"))

    async def scenario() -> None:
        await in_thread(upstream.start)
        probe = UpstreamProbe(upstream.url, interval=0.2, timeout=1.0, path="/v1/models")
        await probe.start()
        try:
            await asyncio.sleep(0.5)
            assert not probe.ready() and probe.path == "/v1/models"
            assert (render(probe_registry(probe)).value("infermeter_upstream_probes_total", result="failure") or 0) >= 2
        finally:
            await probe.stop()
            await in_thread(upstream.kill)

    run(scenario)


def test_a_probe_that_gets_no_answer_fails_after_its_timeout() -> None:
    """A server that accepts but never answers (a hung upstream)."""

    async def scenario() -> None:
        async def silent(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
            try:
                await asyncio.sleep(30)
            finally:  # cancelled when the scenario ends: close the accepted socket, not the GC
                writer.close()

        server = await asyncio.start_server(silent, "127.0.0.1", 0)
        port = server.sockets[0].getsockname()[1]
        probe = UpstreamProbe(f"http://127.0.0.1:{port}", interval=0.2, timeout=0.3, path="/health")
        await probe.start()
        try:
            await until(lambda: (render(probe_registry(probe)).value("infermeter_upstream_probes_total", result="failure") or 0) >= 1, timeout=3)
            data = render(probe_registry(probe))
            assert data.value("infermeter_upstream_up") == 0
            # Each probe waited its timeout, no longer: all land in the 0.5 s bucket.
            count = data.value("infermeter_upstream_probe_duration_seconds_count")
            assert count is not None and count >= 1
            assert data.value("infermeter_upstream_probe_duration_seconds_bucket", le="0.25") == 0
            assert data.value("infermeter_upstream_probe_duration_seconds_bucket", le="0.5") == count
        finally:
            await probe.stop()
            server.close()

    run(scenario)


def test_a_bug_in_the_probe_is_logged_once_and_probing_goes_on(caplog: pytest.LogCaptureFixture,
                                                               monkeypatch: pytest.MonkeyPatch) -> None:
    caplog.set_level(logging.INFO, logger="infermeter.collectors")
    upstream = Upstream(args=("--ok-paths", "/health"))

    async def scenario() -> None:
        await in_thread(upstream.start)
        probe = UpstreamProbe(upstream.url, interval=0.05, timeout=1.0, path="/health")
        real = probe.probe_once
        broken = {"left": 5}

        async def buggy() -> bool:
            if broken["left"] > 0:
                broken["left"] -= 1
                raise RuntimeError("a bug")
            return await real()

        monkeypatch.setattr(probe, "probe_once", buggy)
        await probe.start()
        try:
            await until(lambda: broken["left"] < 5, timeout=3)
            assert probe.status().success is False
            await until(probe.ready, timeout=5)
            assert probe.status().success is True
        finally:
            await probe.stop()
            await in_thread(upstream.kill)

    run(scenario)
    records = [r for r in caplog.records if r.name == "infermeter.collectors"]
    bugs = [r for r in records if r.getMessage() == "upstream probe failed unexpectedly"]
    assert len(bugs) == 1 and bugs[0].exc_info is not None and bugs[0].exc_info[0] is RuntimeError
    assert sum(" is up " in r.getMessage() for r in records) == 1
