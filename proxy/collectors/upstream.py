"""Upstream health: an HTTP probe every ``--probe-interval``, as an asyncio task.

Without ``--probe-path`` the probe uses the first of ``PROBE_PATHS`` that answers 2xx,
trying them all again each round until one does (a server may still be loading its
model at start-up). ``upstream_up`` is the last probe's result; ``uptime_seconds``
counts from the probe that first saw the upstream up after it was down. Changes of
state are logged once each, never every probe.
"""

from __future__ import annotations

import asyncio
import contextlib
import threading
import time
from collections.abc import Callable, Iterable, Sequence

import httpx
from prometheus_client import Counter, Histogram
from prometheus_client.metrics_core import GaugeMetricFamily, Metric

from proxy.collectors.base import Status, log
from proxy.metrics import buckets
from proxy.trouble import Trouble

PROBE_PATHS = ("/health", "/v1/models", "/api/tags", "/")


class UpstreamProbe:
    """Probes the upstream from the event loop and exposes what it saw (a registry collector)."""

    name = "upstream"

    def __init__(
        self,
        upstream: str,
        interval: float = 5.0,
        timeout: float = 2.0,
        connect_timeout: float = 5.0,
        path: str | None = None,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self._base = upstream.rstrip("/")
        self._interval = interval
        self._timeout = timeout
        self._connect_timeout = min(connect_timeout, timeout)
        self._path = path
        self._clock = clock
        self._transport: httpx.AsyncHTTPTransport | None = None
        self._task: asyncio.Task[None] | None = None
        self._lock = threading.Lock()  # collect() may run on another thread than the probe
        self._up: bool | None = None
        self._up_since = 0.0
        # The library's own histogram and counter, kept off any registry: this collector
        # yields them beside the gauges it computes at scrape time.
        self._duration = Histogram("infermeter_upstream_probe_duration_seconds", "Time the upstream took to answer a probe.",
                                   buckets=buckets.PROBE_DURATION, registry=None)
        self._probes = Counter("infermeter_upstream_probes", "Upstream probes by result.", ["result"], registry=None)
        self._results = {result: self._probes.labels(result) for result in ("success", "failure")}
        self._last_duration = 0.0
        # The upstream down (its first state is logged either way: it starts unknown),
        # and a bug in the probe itself: each logged when it begins and ends.
        self._down = Trouble(log, state="unprobed")
        self._broken = Trouble(log)

    @property
    def path(self) -> str | None:
        """The probe path in use; None until one answered (when discovering)."""
        return self._path

    def ready(self) -> bool:
        return self._up is True

    def status(self) -> Status:
        return Status(success=not self._broken.active, duration=self._last_duration)

    async def start(self) -> None:
        if self._task is not None:
            return
        # httpx's transport layer, not its client: no proxy or .netrc taken from the
        # environment (the probe must reach the upstream itself), no redirects, no
        # cookie jar, and no INFO log line per request (the client logs every one;
        # only changes of state belong in the log). A fresh connection per probe, so
        # a dead server cannot hide behind a pooled connection.
        self._transport = httpx.AsyncHTTPTransport(
            limits=httpx.Limits(max_connections=1, max_keepalive_connections=0), retries=0
        )
        self._task = asyncio.create_task(self._run(), name="infermeter-upstream-probe")

    async def stop(self) -> None:
        task, self._task = self._task, None
        if task is not None:
            task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await task
        transport, self._transport = self._transport, None
        if transport is not None:
            await transport.aclose()

    async def _run(self) -> None:
        loop = asyncio.get_running_loop()
        while True:
            started = loop.time()
            try:
                await self.probe_once()
                self._broken.clear()
            except asyncio.CancelledError:
                raise
            except Exception:  # noqa: BLE001 - a bug in one probe must not end the probing
                self._broken.hit(True, "upstream probe failed unexpectedly", exc_info=True)
            await asyncio.sleep(max(0.0, self._interval - (loop.time() - started)))

    async def probe_once(self) -> bool:
        """Probe once, record the result and return whether the upstream answered 2xx."""
        assert self._transport is not None, "start() the probe first"
        paths = (self._path,) if self._path is not None else PROBE_PATHS
        ok = False
        started = self._clock()
        duration = 0.0
        detail = ""
        for path in paths:
            attempt = self._clock()
            unreachable = False
            try:
                # httpx times each step; the bound on the whole answer is ours.
                status = await asyncio.wait_for(self._get(self._transport, path), self._timeout)
                ok = 200 <= status < 300
                detail = f"GET {path}: {status}"
            except httpx.HTTPError as exc:
                detail = f"GET {path}: {type(exc).__name__} {exc}".rstrip()
                unreachable = isinstance(exc, (httpx.ConnectError, httpx.ConnectTimeout))
            except asyncio.TimeoutError:
                detail = f"GET {path}: no answer within {self._timeout:g} s"
            duration = self._clock() - attempt
            if ok:
                if self._path is None:
                    self._path = path
                    log.info("upstream probe: using %s%s", self._base, path)
                break
            if unreachable:
                break  # nobody listens: the other paths would only fail the same way
        self._record(ok, duration, started, detail)
        return ok

    async def _get(self, transport: httpx.AsyncHTTPTransport, path: str) -> int:
        request = httpx.Request(
            "GET",
            self._base + path,
            headers={"User-Agent": "infermeter-probe", "Connection": "close"},
            extensions={"timeout": httpx.Timeout(self._timeout, connect=self._connect_timeout).as_dict()},
        )
        response = await transport.handle_async_request(request)
        # The status line is the answer; the body is not worth reading.
        await response.aclose()
        return response.status_code

    def _record(self, ok: bool, duration: float, started: float, detail: str) -> None:
        with self._lock:
            self._results["success" if ok else "failure"].inc()
            self._duration.observe(duration)
            self._last_duration = duration
            if ok and self._up is not True:
                self._up_since = started
            self._up = ok
        if ok:
            self._down.clear("upstream %s is up (%s)", self._base, detail)
        else:
            self._down.hit(True, "upstream %s is down (%s)", self._base, detail or "no probe path answered")

    def describe(self) -> Sequence[Metric]:
        return [*_gauges(), *self._duration.describe(), *self._probes.describe()]

    def collect(self) -> Iterable[Metric]:
        up, uptime = _gauges()
        with self._lock:
            is_up = self._up is True
            up.add_metric([], 1.0 if is_up else 0.0)
            uptime.add_metric([], max(0.0, self._clock() - self._up_since) if is_up else 0.0)
            return [up, uptime, *_without_created([*self._duration.collect(), *self._probes.collect()])]


def _without_created(families: list[Metric]) -> list[Metric]:
    # The probe's series have never had _created samples; the library adds them.
    for family in families:
        family.samples = [s for s in family.samples if not s.name.endswith("_created")]
    return families


def _gauges() -> tuple[GaugeMetricFamily, GaugeMetricFamily]:
    return (
        GaugeMetricFamily("infermeter_upstream_up", "1 if the last probe of the upstream answered 2xx, else 0."),
        GaugeMetricFamily(
            "infermeter_upstream_uptime_seconds", "Seconds since the upstream last came up; 0 while it is down."
        ),
    )
