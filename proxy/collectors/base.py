"""What every collector shares: the shape of one reading, its health, and the logger.

A synchronous collector (system, gpu) turns one read of its data source into finished
metric families; the sampler thread calls it and caches the result, so `/metrics` only
ever yields objects that already exist and never touches NVML or psutil itself.
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Protocol

from prometheus_client.metrics_core import Metric

log = logging.getLogger("infermeter.collectors")


@dataclass(frozen=True)
class Sample:
    """One reading of a synchronous collector.

    ``ok`` is False when part of the source failed: the families that could be read are
    still exported (like prometheus_client's process collector, partial data beats
    none) and ``error`` says what failed, for one log line per failure episode.
    """

    families: tuple[Metric, ...]
    ok: bool = True
    error: str | None = None


@dataclass(frozen=True)
class Status:
    """What ``infermeter_collector_success`` and ``_duration_seconds`` report."""

    success: bool
    duration: float


class SyncCollector(Protocol):
    """A collector read from the sampler thread; it may block, fail or hang there."""

    name: str

    def sample(self) -> Sample:
        """Read the source once; may raise, the sampler counts that as a failure."""
        ...

    def describe(self) -> Sequence[Metric]:
        """Empty families naming every series this collector can export."""
        ...

    def close(self) -> None:
        """Release the source (e.g. ``nvmlShutdown``); only called when no sample runs."""
        ...
