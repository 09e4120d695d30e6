"""The sampler: reads the synchronous collectors off the event loop and caches them.

Each collector gets its own daemon worker thread, and one scheduler thread wakes every
``interval`` and hands each idle worker its next read (``tick``). A read that runs past its
``deadline`` (an NVML call can hang in the driver) cannot be interrupted in Python, so it
is left to finish on its own: meanwhile the collector reports success 0, its last good
families keep being served, and no second read piles up behind it. Daemon threads mean
a read stuck forever cannot hold up interpreter exit either.

Every time value the sampler uses (ages, deadlines, durations, the schedule) comes from
its ``clock``, so a test can drive time instead of waiting for it.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable, Sequence

from prometheus_client.metrics_core import Metric

from proxy.collectors.base import Sample, Status, SyncCollector, log
from proxy.trouble import Trouble

_FIRST_READ_PATIENCE = 10.0
_OVERRUN = object()


def next_tick(due: float, now: float, interval: float) -> float:
    """When the tick after the one ``due`` runs: one ``interval`` later, or, when the
    machine stalled past that, one ``interval`` from ``now``: missed ticks are skipped,
    not replayed in a burst."""
    due += interval
    return due if due >= now else now + interval


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
        # The read's error, or _OVERRUN while a read is late: logged once when it starts
        # or changes, and recovery once, not every read.
        self.trouble = Trouble(log)


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
        self._started = False
        self._scheduler: threading.Thread | None = None

    @property
    def names(self) -> list[str]:
        return list(self._slots)

    def start(self, schedule: bool = True) -> None:
        """Start the workers and, unless ``schedule`` is False (a test calling ``tick``
        itself), the scheduler."""
        if self._started:
            return
        self._started = True
        for name, slot in self._slots.items():
            slot.thread = threading.Thread(target=self._work, args=(slot,), name=f"infermeter-{name}", daemon=True)
            slot.thread.start()
        if schedule:
            self._scheduler = threading.Thread(target=self._schedule, name="infermeter-sampler", daemon=True)
            self._scheduler.start()

    def stop(self, timeout: float = 2.0) -> None:
        """Stop every thread, waiting at most ``timeout`` seconds in all; close idle sources."""
        self._stop.set()
        for slot in self._slots.values():
            slot.go.set()
        # Real time, not the clock: this bounds how long threads are waited for.
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

    def idle(self, name: str) -> bool:
        """Whether the collector has no read under way."""
        slot = self._slots[name]
        with slot.lock:
            return slot.running_since is None

    def status(self, name: str) -> Status:
        slot = self._slots[name]
        with slot.lock:
            since = slot.running_since
            if since is not None:
                elapsed = self._clock() - since
                if elapsed > self.deadline:
                    return Status(success=False, duration=elapsed)
            return Status(success=slot.success, duration=slot.duration)

    def tick(self) -> None:
        """One round: hand each idle worker its next read; note a read that runs late."""
        for slot in self._slots.values():
            self._dispatch(slot)

    def _schedule(self) -> None:
        due = self._clock()
        while not self._stop.is_set():
            self.tick()
            due = next_tick(due, self._clock(), self.interval)
            self._stop.wait(max(0.0, due - self._clock()))

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
            if elapsed <= patience:
                return
        slot.trouble.hit(_OVERRUN, "collector %s: a read has run %.1f s, past its %.1f s deadline; serving its "
                         "last good sample until it returns", slot.collector.name, elapsed, self.deadline)

    def _work(self, slot: _Slot) -> None:
        while True:
            slot.go.wait()
            slot.go.clear()
            if self._stop.is_set():
                return
            self._read(slot)

    def _read(self, slot: _Slot) -> None:
        name = slot.collector.name
        with slot.lock:
            # Timed from its dispatch, as status() times a read under way: the two agree.
            started = slot.running_since if slot.running_since is not None else self._clock()
        sample: Sample | None = None
        try:
            sample = slot.collector.sample()
            error = sample.error if not sample.ok else None
            if not sample.ok and error is None:
                error = "partial read"
        except Exception as exc:  # noqa: BLE001 - a failing source must not kill its worker
            error = f"{type(exc).__name__}: {exc}"
        now = self._clock()
        duration = now - started
        with slot.lock:
            if sample is not None:
                slot.families = sample.families
                slot.families_at = now
            slot.success = error is None
            slot.duration = duration
            slot.running_since = None
        if error is not None:
            slot.trouble.hit(error, "collector %s failing: %s", name, error)
        else:
            slot.trouble.clear("collector %s recovered (last read took %.2f s)", name, duration)
