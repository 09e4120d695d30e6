"""The sampler: reads the synchronous collectors off the event loop and caches them.

Each collector gets its own daemon worker thread, and one scheduler thread wakes every
``interval`` and hands each idle worker its next read. A read that runs past its
``deadline`` (an NVML call can hang in the driver) cannot be interrupted in Python, so it
is left to finish on its own: meanwhile the collector reports success 0, its last good
families keep being served, and no second read piles up behind it. Daemon threads mean
a read stuck forever cannot hold up interpreter exit either.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable, Sequence

from prometheus_client.metrics_core import Metric

from proxy.collectors.base import Sample, Status, SyncCollector, log

_FIRST_READ_PATIENCE = 10.0


class _Slot:
    """One collector's worker, its cache and its health, guarded by ``lock``."""

    def __init__(self, collector: SyncCollector) -> None:
        self.collector = collector
        self.lock = threading.Lock()
        self.go = threading.Event()
        self.thread: threading.Thread | None = None
        self.families: tuple[Metric, ...] = ()
        self.families_at: float | None = None
        self.success = False
        self.duration = 0.0
        self.running_since: float | None = None
        self.overrun_logged = False
        # The error of the failure episode under way (None while healthy), so a failure
        # is logged once when it starts or changes, and recovery once, not every read.
        self.failing: str | None = None


class Sampler:
    """Runs ``collectors`` every ``interval`` seconds in threads and caches their samples."""

    def __init__(
        self,
        collectors: Sequence[SyncCollector],
        interval: float,
        deadline: float | None = None,
        stale_after: float | None = None,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.interval = interval
        # A read is late once the next one is due; below a few hundred ms that would flag
        # a loaded machine's ordinary scheduling jitter as a hang.
        self.deadline = deadline if deadline is not None else max(interval, 0.5)
        # Serving a frozen value forever would draw flat lines on dashboards; past this
        # age a failed collector exports nothing but its success 0.
        self.stale_after = stale_after if stale_after is not None else max(30.0, 10 * interval)
        self._clock = clock
        self._slots = {c.name: _Slot(c) for c in collectors}
        self._stop = threading.Event()
        self._scheduler: threading.Thread | None = None

    @property
    def names(self) -> list[str]:
        return list(self._slots)

    def start(self) -> None:
        if self._scheduler is not None:
            return
        for name, slot in self._slots.items():
            slot.thread = threading.Thread(target=self._work, args=(slot,), name=f"infermeter-{name}", daemon=True)
            slot.thread.start()
        self._scheduler = threading.Thread(target=self._schedule, name="infermeter-sampler", daemon=True)
        self._scheduler.start()

    def stop(self, timeout: float = 2.0) -> None:
        """Stop every thread, waiting at most ``timeout`` seconds in all; close idle sources."""
        self._stop.set()
        for slot in self._slots.values():
            slot.go.set()
        end = time.monotonic() + timeout
        threads = [self._scheduler] + [s.thread for s in self._slots.values()]
        for thread in threads:
            if thread is not None:
                thread.join(max(0.0, end - time.monotonic()))
        for slot in self._slots.values():
            if slot.thread is not None and slot.thread.is_alive():
                log.warning("collector %s is still inside a read at shutdown; leaving it behind", slot.collector.name)
                continue
            try:
                slot.collector.close()
            except Exception as exc:  # noqa: BLE001 - shutdown must go on whatever a source does
                log.debug("collector %s: close failed: %s", slot.collector.name, exc)

    def families(self, name: str) -> tuple[Metric, ...]:
        slot = self._slots[name]
        with slot.lock:
            if slot.families_at is None or self._clock() - slot.families_at > self.stale_after:
                return ()
            return slot.families

    def status(self, name: str) -> Status:
        slot = self._slots[name]
        with slot.lock:
            since = slot.running_since
            if since is not None:
                elapsed = self._clock() - since
                if elapsed > self.deadline:
                    return Status(success=False, duration=elapsed)
            return Status(success=slot.success, duration=slot.duration)

    def _schedule(self) -> None:
        next_at = time.monotonic()
        while not self._stop.is_set():
            for slot in self._slots.values():
                self._dispatch(slot)
            next_at += self.interval
            now = time.monotonic()
            if next_at < now:
                # Ticks missed while the machine was stalled are skipped, not replayed.
                next_at = now + self.interval
            self._stop.wait(next_at - now)

    def _dispatch(self, slot: _Slot) -> None:
        now = self._clock()
        with slot.lock:
            if slot.running_since is None:
                slot.running_since = now
                slot.go.set()
                return
            elapsed = now - slot.running_since
            # The first read may legitimately take seconds (nvmlInit on GPUs without
            # persistence mode): it is reported as failing, but not logged as hung.
            patience = self.deadline if slot.families_at is not None else max(self.deadline, _FIRST_READ_PATIENCE)
            if elapsed <= patience or slot.overrun_logged:
                return
            slot.overrun_logged = True
        log.warning(
            "collector %s: a read has run %.1f s, past its %.1f s deadline; serving its last good sample until it returns",
            slot.collector.name,
            elapsed,
            self.deadline,
        )

    def _work(self, slot: _Slot) -> None:
        while True:
            slot.go.wait()
            slot.go.clear()
            if self._stop.is_set():
                return
            self._read(slot)

    def _read(self, slot: _Slot) -> None:
        name = slot.collector.name
        started = time.perf_counter()
        sample: Sample | None = None
        try:
            sample = slot.collector.sample()
            error = sample.error if not sample.ok else None
            if not sample.ok and error is None:
                error = "partial read"
        except Exception as exc:  # noqa: BLE001 - a failing source must not kill its worker
            error = f"{type(exc).__name__}: {exc}"
        duration = time.perf_counter() - started
        with slot.lock:
            if sample is not None:
                slot.families = sample.families
                slot.families_at = self._clock()
            slot.success = error is None
            slot.duration = duration
            slot.running_since = None
            overran = slot.overrun_logged
            slot.overrun_logged = False
            previous, slot.failing = slot.failing, error
        if error is not None and error != previous:
            log.warning("collector %s failing: %s", name, error)
        elif error is None and (previous is not None or overran):
            log.info("collector %s recovered (last read took %.2f s)", name, duration)
