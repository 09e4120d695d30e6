"""The requests in flight in one relay process, and their work in each sampling interval.

The relay registers a request when it arrives and hands over its finishing step when it
ends; both are per request, never per chunk. The work of a request is read at interval
boundaries from counters the record keeps anyway (``summary.token_events``), so the hot
path pays nothing for attribution. An interval is closed in two steps so that its split
can be computed where the GPU counters are known and every process's work is summed
(``measure``, then ``settle`` with the rates): with ``--workers`` those are different
processes.
"""

from __future__ import annotations

import threading
from collections.abc import Callable
from dataclasses import dataclass
from time import perf_counter_ns

from proxy.timing import RequestRecord

Closer = Callable[[RequestRecord], None]


@dataclass(frozen=True, slots=True)
class Work:
    """One party's work in an interval: token-weighted work and seconds in flight."""

    work: float = 0.0
    seconds: float = 0.0


@dataclass(slots=True, eq=False)
class _Entry:
    rec: RequestRecord
    seen: int = 0
    prefilled: bool = False
    work: float = 0.0
    seconds: float = 0.0
    closer: Closer | None = None
    # It had ended when its interval was measured: settling that interval closes it.
    closing: bool = False


def uncached_prompt(rec: RequestRecord) -> int:
    """The prompt tokens the server computed: input less those served from its cache."""
    summary = rec.summary
    if summary.input_tokens is None:
        return 0
    return max(summary.input_tokens - (summary.cached_input_tokens or 0), 0)


class InFlight:
    """The registry ``measure``/``settle`` split each interval over. ``active`` is False
    until a GPU is read; until then the relay registers nothing."""

    def __init__(self, prefill_weight: float) -> None:
        self.prefill_weight = prefill_weight
        self.active = False
        self._lock = threading.Lock()
        self._live: dict[int, _Entry] = {}
        self._pending: list[_Entry] = []
        self._at: int | None = None

    def begin(self, rec: RequestRecord) -> None:
        rec.gpu_seconds = rec.energy_joules = 0.0
        with self._lock:
            self._live[id(rec)] = _Entry(rec)

    def holds(self, rec: RequestRecord) -> bool:
        with self._lock:
            return id(rec) in self._live

    def end(self, rec: RequestRecord, closer: Closer) -> bool:
        """The request is over: ``closer`` runs once its last interval is settled (in the
        sampler's thread). False when it was never registered: the caller closes it."""
        with self._lock:
            entry = self._live.get(id(rec))
            if entry is None:
                return False
            entry.closer = closer
            return True

    def measure(self, now: int | None = None) -> Work:
        """Close the interval that ends ``now`` (perf_counter_ns): each request's work in
        it, kept until ``settle``. The first call only sets the interval's start."""
        now = perf_counter_ns() if now is None else now
        # The first interval starts now: from here on the relay registers its requests.
        self.active = True
        with self._lock:
            start, self._at = self._at, now
            self._pending = list(self._live.values())
        if start is None:
            self._pending = []
            return Work()
        total_work = total_seconds = 0.0
        for entry in self._pending:
            rec = entry.rec
            entry.closing = entry.closer is not None
            events = rec.summary.token_events
            entry.work = float(events - entry.seen)
            entry.seen = events
            if not entry.prefilled and rec.t_first is not None and rec.t_first <= now:
                prompt = uncached_prompt(rec)
                # The prompt is known only once the server reports usage: until then the
                # prefill is owed, and is charged in the interval the count arrives.
                if prompt or entry.closing:
                    entry.prefilled = True
                    entry.work += prompt * self.prefill_weight
            end = rec.t_end if rec.t_end is not None and entry.closing else now
            entry.seconds = max(min(end, now) - max(rec.t_arrival, start), 0) / 1e9
            total_work += entry.work
            total_seconds += entry.seconds
        return Work(total_work, total_seconds)

    def settle(self, busy: float, energy: float, by: str) -> bool:
        """Give each measured request its share: ``busy`` seconds and ``energy`` joules per
        unit of ``by`` ("work" or "seconds", as the caller chose over every party's sum).
        Requests that had ended are closed now, outside the lock."""
        done: list[_Entry] = []
        for entry in self._pending:
            units = entry.work if by == "work" else entry.seconds
            rec = entry.rec
            rec.gpu_seconds = (rec.gpu_seconds or 0.0) + busy * units
            rec.energy_joules = (rec.energy_joules or 0.0) + energy * units
            if entry.closing:
                done.append(entry)
        self._pending = []
        if done:
            with self._lock:
                for entry in done:
                    self._live.pop(id(entry.rec), None)
        for entry in done:
            assert entry.closer is not None
            entry.closer(entry.rec)
        return True

    def close_all(self) -> None:
        """At shutdown: close what is left with the shares it has; register nothing more."""
        self.active = False
        with self._lock:
            left, self._live = list(self._live.values()), {}
        for entry in left:
            if entry.closer is not None:
                entry.closer(entry.rec)
