"""The supervisor of ``serve --workers N``: one port, N relay processes, one ``/metrics``.

The port's sockets are made here, one per worker slot with SO_REUSEPORT, and each worker
serves its slot's (why, and what it costs: ``proxy.workers.listen``). Workers are spawned (a fresh interpreter, not
a fork of this threaded process), watched through their sentinels and restarted when
they die, with a back-off while they die young; one log line says which and how.
SIGTERM or SIGINT stops them all gracefully (uvicorn drains each), then the supervisor.
The supervisor runs the resource collectors (host, GPU, upstream probe and process,
Ollama) once and answers ``/readyz`` and ``/metrics`` for every worker.
"""

from __future__ import annotations

import asyncio
import logging
import multiprocessing
import os
import signal
import socket
import time
from collections.abc import Iterable
from dataclasses import dataclass
from multiprocessing.process import BaseProcess
from typing import Any

import uvicorn
from prometheus_client.metrics_core import CounterMetricFamily, GaugeMetricFamily, Metric

from proxy.admin import admin_app, metrics_app, process_registry
from proxy.attribution.meter import GpuMeter
from proxy.attribution.remote import WorkerParty
from proxy.attribution.series import UNATTRIBUTED, AttributionSeries, CostGauges
from proxy.collectors import CollectorSet, build_collectors
from proxy.config import Settings
from proxy.server import BACKLOG, SideServer, configure_logging, uvicorn_config
from proxy.workers.channel import WorkerLink
from proxy.workers.listen import accepting, fresh_slot, slot_sockets
from proxy.workers.merge import Merger, merged_registry
from proxy.workers.private import PrivateDir
from proxy.workers.worker import WorkerSpec, run_worker

log = logging.getLogger("infermeter")

# Workers are also collected in the background when no scrape did it lately, so a worker
# killed between scrapes takes at most this much of its counting with it. A collection
# costs a worker about what rendering its /metrics would (~55 ms for 23k samples).
POLL_INTERVAL = 5.0
# How long a scrape waits for a busy worker before merging its previous snapshot.
COLLECT_DEADLINE = 1.0
# uvicorn drains for 5 s (timeout_graceful_shutdown), then the app's lifespan shutdown.
STOP_GRACE = 15.0
# A worker that dies younger than this is crash-looping: back off before the next start.
YOUNG = 5.0
MAX_BACKOFF = 10.0


@dataclass
class _Worker:
    # The worker's slot, 0..N-1; its replacement takes the same one. The merger keys its
    # counts by slot too: a dead worker's are retired before the replacement starts.
    index: int
    process: BaseProcess
    link: WorkerLink
    started: float
    # Its half of GPU attribution: the supervisor splits each interval over the workers.
    party: WorkerParty
    # Set when its sentinel fires, which can come before waitpid (is_alive) knows it died.
    exited: bool = False


def _exit_text(code: int | None) -> str:
    if code is None:
        return "an unknown status"
    if code < 0:
        try:
            return f"signal {signal.Signals(-code).name}"
        except ValueError:
            return f"signal {-code}"
    return f"exit code {code}"


class _WorkersCollector:
    def __init__(self, supervisor: Supervisor) -> None:
        self._supervisor = supervisor

    def collect(self) -> Iterable[Metric]:
        live = GaugeMetricFamily("infermeter_workers", "Relay worker processes running now (--workers).")
        live.add_metric([], float(len(self._supervisor.workers)))
        restarts = CounterMetricFamily("infermeter_worker_restarts", "Relay workers restarted after they died.")
        restarts.add_metric([], float(self._supervisor.restarts))
        return [live, restarts]


class Supervisor:
    def __init__(self, settings: Settings, listeners: list[socket.socket], private_dir: str) -> None:
        self.settings = settings
        self.listeners = listeners
        self.port: int = listeners[0].getsockname()[1]
        self.private_dir = private_dir
        self.uds = os.path.join(private_dir, "supervisor.sock")
        self.models_path = os.path.join(private_dir, "models")
        self.tenants_path = os.path.join(private_dir, "tenants")
        self.merger = Merger()
        self.own = process_registry()
        self.own.register(_WorkersCollector(self))
        # GPU attribution: the GPUs are read here, the requests are the workers'.
        self._parties: tuple[WorkerParty, ...] = ()
        sink = None
        if settings.observe:
            series = AttributionSeries((UNATTRIBUTED,))
            self.own.register(series)
            self.own.register(CostGauges(settings.gpu_hour_cost, settings.energy_kwh_cost))
            sink = GpuMeter(series, lambda: self._parties).observe
        self.collectors: CollectorSet = build_collectors(settings, self.own, gpu_sink=sink)
        self.registry = merged_registry(self.merger, self.own)
        self.workers: dict[int, _Worker] = {}
        self.restarts = 0
        self._context = multiprocessing.get_context("spawn")
        self._backoff: dict[int, float] = {}
        self._stopping = False
        self._refreshed = 0.0
        self._tasks: set[asyncio.Task[Any]] = set()

    async def refresh(self) -> None:
        """Collect every live worker, each for at most ``COLLECT_DEADLINE``."""
        self._refreshed = time.monotonic()
        workers = list(self.workers.values())
        if workers:
            await asyncio.gather(*(w.link.refresh(COLLECT_DEADLINE) for w in workers))

    def _spawn(self, index: int) -> None:
        ours, theirs = socket.socketpair()
        attr_ours, attr_theirs = socket.socketpair()
        spec = WorkerSpec(self.settings, index, self.uds, self.models_path, self.tenants_path)
        process = self._context.Process(target=run_worker, args=(spec, self.listeners[index], theirs, attr_theirs),
                                        name=f"infermeter-worker-{index}", daemon=True)
        process.start()
        theirs.close()
        attr_theirs.close()
        worker = _Worker(index, process, WorkerLink(index, ours, self.merger), time.monotonic(),
                         WorkerParty(index, attr_ours))
        self.workers[index] = worker
        # Replaced whole, never changed in place: the sampler thread reads it.
        self._parties = tuple(w.party for w in self.workers.values())
        loop = asyncio.get_running_loop()
        loop.add_reader(process.sentinel, self._exited, worker)

    def _exited(self, worker: _Worker) -> None:
        asyncio.get_running_loop().remove_reader(worker.process.sentinel)
        worker.exited = True
        self._keep(asyncio.ensure_future(self._reap(worker)))

    def _keep(self, task: asyncio.Task[Any]) -> None:
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    def _others_serve(self, dead: _Worker) -> bool:
        # A replacement whose server has not started yet does not count: its fresh socket
        # is not listening, and the slot it would leave queueing would be no one's.
        return any(not w.exited and w.process.is_alive() and accepting(self.listeners[w.index])
                   for w in self.workers.values() if w is not dead)

    async def _reap(self, worker: _Worker) -> None:
        if not self._stopping and self._others_serve(worker):
            # At once, before the reap: survivors take the slot's share while it is empty;
            # with none, its socket keeps queueing for the replacement (proxy.workers.listen).
            self.listeners[worker.index] = fresh_slot(self.listeners[worker.index])
        # The sentinel can fire a moment before the kernel has the exit status to give.
        await asyncio.to_thread(worker.process.join, 5.0)
        code = worker.process.exitcode
        await worker.link.close(COLLECT_DEADLINE)
        self._parties = tuple(w.party for w in self.workers.values() if w is not worker)
        worker.party.close()
        # What it counted stays in the totals; its gauges (in flight) go with it.
        self.merger.retire(worker.index)
        if self.workers.get(worker.index) is worker:
            del self.workers[worker.index]
        if self._stopping:
            return
        lived = time.monotonic() - worker.started
        delay = 0.0
        if lived < YOUNG:
            delay = min(MAX_BACKOFF, max(0.1, 2 * self._backoff.get(worker.index, 0.0)))
        self._backoff[worker.index] = delay
        log.warning("worker %d (pid %s) exited with %s after %.1f s; restarting%s", worker.index,
                    worker.process.pid, _exit_text(code), lived, f" in {delay:.1f} s" if delay else "")
        if delay:
            await asyncio.sleep(delay)
        if not self._stopping:
            self.restarts += 1
            self._spawn(worker.index)

    async def _poll(self) -> None:
        while True:
            await asyncio.sleep(POLL_INTERVAL)
            if time.monotonic() - self._refreshed >= POLL_INTERVAL:
                await self.refresh()

    def _servers(self) -> list[uvicorn.Server]:
        s = self.settings
        admin = admin_app(s, self.registry, self.collectors.upstream_ready, self.refresh)
        servers: list[uvicorn.Server] = [SideServer(uvicorn.Config(admin, uds=self.uds, lifespan="off", log_level=s.log_level.lower(),
                                             access_log=False))]
        if s.metrics_port is not None:
            servers.append(SideServer(uvicorn_config(metrics_app(s, self.registry, self.refresh), s.host,
                                                     s.metrics_port, s.log_level, lifespan="off",
                                                     limits=s.head_limits)))
        return servers

    async def run(self) -> None:
        loop = asyncio.get_running_loop()
        stop = asyncio.Event()
        for sig in (signal.SIGTERM, signal.SIGINT):
            loop.add_signal_handler(sig, stop.set)
        await self.collectors.start()
        servers = self._servers()
        serving = [asyncio.ensure_future(server.serve()) for server in servers]
        while not all(server.started for server in servers):
            if any(task.done() for task in serving):
                raise RuntimeError("the supervisor's own listener did not start")
            await asyncio.sleep(0.01)
        for index in range(self.settings.workers):
            self._spawn(index)
        log.info("infermeter relaying http://%s:%d -> %s with %d workers", self.settings.host,
                 self.port, self.settings.upstream, self.settings.workers)
        poll = asyncio.ensure_future(self._poll())
        await stop.wait()
        log.info("stopping %d workers", len(self.workers))
        self._stopping = True
        poll.cancel()
        # Once each worker has closed its copy too, the port refuses new connections
        # rather than queueing them for workers that will not come back.
        for listener in self.listeners:
            listener.close()
        await self._stop_workers()
        for server in servers:
            server.should_exit = True
        await asyncio.gather(*serving, return_exceptions=True)
        await self.collectors.stop()

    async def _stop_workers(self) -> None:
        for worker in self.workers.values():
            if worker.process.is_alive():
                worker.process.terminate()
        deadline = time.monotonic() + STOP_GRACE
        while self.workers and time.monotonic() < deadline:
            await asyncio.sleep(0.05)
        for worker in list(self.workers.values()):
            log.warning("worker %d (pid %s) did not stop within %.0f s; killing it", worker.index,
                        worker.process.pid, STOP_GRACE)
            worker.process.kill()
        while self.workers or self._tasks:
            await asyncio.sleep(0.05)


def supervise(settings: Settings) -> int:
    """``serve --workers N`` (N > 1): listen, run the supervisor until SIGTERM/SIGINT."""
    configure_logging(settings.log_level)
    listeners = slot_sockets(settings.host, settings.port, settings.workers, BACKLOG)
    private = PrivateDir()
    try:
        asyncio.run(Supervisor(settings, listeners, private.path).run())
    finally:
        for listener in listeners:
            listener.close()
        private.close()
    return 0
