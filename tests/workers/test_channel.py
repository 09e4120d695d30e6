"""The snapshot channel itself, both ends in this process over a real socket pair: a
round trip, a reply that misses the scrape's deadline, closing while one is on its way,
and either side going away."""

from __future__ import annotations

import asyncio
import socket
import threading
import time
from collections.abc import Callable, Iterable, Iterator

import pytest
from prometheus_client import CollectorRegistry, Counter
from prometheus_client.metrics_core import CounterMetricFamily, Metric

from proxy.workers.channel import WorkerLink, serve_snapshots
from proxy.workers.merge import Merger
from proxy.workers.snapshot import snapshot


class _Gated:
    """A collector that answers only when let through, counting how often it was asked."""

    def __init__(self) -> None:
        self.value = 0.0
        self.asked = 0
        self.gate = threading.Event()
        self.gate.set()

    def collect(self) -> Iterable[Metric]:
        self.asked += 1
        self.gate.wait(timeout=10)
        family = CounterMetricFamily("served", "requests served")
        family.add_metric([], self.value)
        return [family]


class _Worker:
    """The worker's end: a registry, the snapshot thread, and whether it saw its parent go."""

    def __init__(self, ours: socket.socket) -> None:
        self.registry = CollectorRegistry(auto_describe=False)
        self.gated = _Gated()
        self.registry.register(self.gated)
        self.parent_gone = threading.Event()
        self.thread = serve_snapshots(ours, self.registry, self.parent_gone.set)


@pytest.fixture
def pair() -> Iterator[tuple[WorkerLink, _Worker, Merger]]:
    supervisor_end, worker_end = socket.socketpair()
    merger = Merger()
    worker = _Worker(worker_end)
    link = WorkerLink(7, supervisor_end, merger)
    yield link, worker, merger
    worker.gated.gate.set()
    supervisor_end.close()
    worker.thread.join(timeout=10)
    assert not worker.thread.is_alive()


def _served(merger: Merger) -> float | None:
    for family in merger.live_families(7):
        for sample in family.samples:
            if sample.name == "served_total":
                return sample.value
    return None


def test_each_refresh_brings_the_worker_s_registry(pair: tuple[WorkerLink, _Worker, Merger]) -> None:
    link, worker, merger = pair

    async def scenario() -> list[float | None]:
        seen = []
        for value in (3.0, 5.0):
            worker.gated.value = value
            await link.refresh(5.0)
            seen.append(_served(merger))
        await link.close(1.0)
        return seen

    assert asyncio.run(scenario()) == [3.0, 5.0]
    assert worker.gated.asked == 2
    # The supervisor's end closed: the worker is told its parent is gone.
    assert worker.parent_gone.wait(timeout=5)


def test_a_late_reply_lands_for_the_next_scrape(pair: tuple[WorkerLink, _Worker, Merger]) -> None:
    link, worker, merger = pair

    async def scenario() -> tuple[float, float | None, float | None, float | None]:
        worker.gated.value = 1.0
        await link.refresh(5.0)
        worker.gated.value = 2.0
        worker.gated.gate.clear()
        started = time.monotonic()
        await link.refresh(0.2)
        waited = time.monotonic() - started
        # Past its deadline the scrape renders what it had: the older, smaller snapshot.
        stale = _served(merger)
        # A scrape while the reply is still owed asks nothing more: one reply per ask.
        await link.refresh(0.05)
        worker.gated.gate.set()
        await _until(lambda: _served(merger) != 1.0)
        landed = _served(merger)
        worker.gated.value = 4.0
        await link.refresh(5.0)
        after = _served(merger)
        await link.close(1.0)
        return waited, stale, landed, after

    waited, stale, landed, after = asyncio.run(scenario())
    assert 0.19 <= waited < 2.0
    assert stale == 1.0 and landed == 2.0
    # The reply that came late was the answer to its own ask: the next one is in step.
    assert after == 4.0
    assert worker.gated.asked == 3


def test_close_lets_a_reply_on_its_way_land_then_gives_up(pair: tuple[WorkerLink, _Worker, Merger]) -> None:
    link, worker, merger = pair

    async def scenario() -> tuple[float | None, float]:
        worker.gated.gate.clear()
        worker.gated.value = 6.0
        await link.refresh(0.01)
        asyncio.get_running_loop().call_later(0.1, worker.gated.gate.set)
        await link.close(5.0)
        landed = _served(merger)
        # Closed: no more asks, and a refresh returns at once.
        started = time.monotonic()
        await link.refresh(5.0)
        return landed, time.monotonic() - started

    landed, took = asyncio.run(scenario())
    assert landed == 6.0 and took < 0.5
    assert worker.gated.asked == 1


def test_close_stops_waiting_at_its_deadline(pair: tuple[WorkerLink, _Worker, Merger]) -> None:
    link, worker, merger = pair

    async def scenario() -> float:
        worker.gated.gate.clear()
        await link.refresh(0.01)
        started = time.monotonic()
        await link.close(0.2)
        return time.monotonic() - started

    took = asyncio.run(scenario())
    assert 0.19 <= took < 2.0
    assert _served(merger) is None


def test_a_worker_gone_mid_reply_leaves_the_last_snapshot() -> None:
    supervisor_end, worker_end = socket.socketpair()
    merger = Merger()
    registry = CollectorRegistry()
    Counter("served", "requests served", registry=registry).inc(9)

    def worker() -> None:
        # Answers one ask, then dies in the middle of the second reply.
        with worker_end:
            worker_end.recv(1)
            body = snapshot(registry)
            worker_end.sendall(len(body).to_bytes(4, "big") + body)
            worker_end.recv(1)
            worker_end.sendall(len(body).to_bytes(4, "big") + body[:10])

    thread = threading.Thread(target=worker)
    thread.start()
    link = WorkerLink(7, supervisor_end, merger)

    async def scenario() -> list[float | None]:
        seen = []
        for _ in range(3):
            await link.refresh(5.0)
            seen.append(_served(merger))
        await link.close(1.0)
        return seen

    assert asyncio.run(scenario()) == [9.0, 9.0, 9.0]
    thread.join(timeout=5)


async def _until(check: Callable[[], bool], timeout: float = 5.0) -> None:
    deadline = time.monotonic() + timeout
    while not check() and time.monotonic() < deadline:
        await asyncio.sleep(0.01)
