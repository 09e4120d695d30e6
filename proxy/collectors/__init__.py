"""Host, GPU, upstream and Ollama collectors, each enabled by name in ``--collectors``.

``build_collectors`` registers them into the app's registry (nothing is registered at
import time); the app starts and stops the returned ``CollectorSet`` in its lifespan.
System and GPU are read by the sampler thread and served from its cache; the upstream
probe is an asyncio task. None of them can block ``/metrics`` or take it down.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from typing import Any

from prometheus_client import CollectorRegistry

from proxy.collectors.base import Status, SyncCollector
from proxy.collectors.registry import CachedCollector, StatusCollector
from proxy.collectors.gpu import GpuCollector
from proxy.collectors.ollama import HttpFetch, OllamaCollector
from proxy.collectors.locator import UpstreamProcessLocator
from proxy.collectors.sampler import Sampler
from proxy.collectors.system import SystemCollector
from proxy.collectors.upstream import UpstreamProbe
from proxy.config import Settings

__all__ = ["CollectorSet", "build_collectors"]

# A hung NVML read is left behind rather than waited for: shutdown takes at most this.
_STOP_TIMEOUT = 2.0


class CollectorSet:
    """The running collectors of one app: the sampler thread and the probe task."""

    def __init__(self, sampler: Sampler, probe: UpstreamProbe | None) -> None:
        self.sampler = sampler
        self.probe = probe

    async def start(self) -> None:
        if self.sampler.names:
            self.sampler.start()
        if self.probe is not None:
            await self.probe.start()

    async def stop(self) -> None:
        if self.probe is not None:
            await self.probe.stop()
        # Joining threads blocks, so it happens off the event loop.
        await asyncio.to_thread(self.sampler.stop, _STOP_TIMEOUT)

    def upstream_ready(self) -> bool:
        """For ``/readyz``: the last probe succeeded (always True with the probe disabled)."""
        return self.probe is None or self.probe.ready()

    def statuses(self) -> Iterator[tuple[str, Status]]:
        for name in self.sampler.names:
            yield name, self.sampler.status(name)
        if self.probe is not None:
            yield self.probe.name, self.probe.status()


@dataclass
class _Build:
    """What the collector factories share while one app's collectors are built."""

    settings: Settings
    nvml: Any
    ps: dict[str, Any]
    _locator: UpstreamProcessLocator | None = None

    def locator(self) -> UpstreamProcessLocator:
        # One finder for every collector that needs the upstream's process (system, gpu).
        if self._locator is None:
            self._locator = UpstreamProcessLocator(self.settings.upstream_url, self.settings.upstream_pid, **self.ps)
        return self._locator


def _system(b: _Build) -> SyncCollector:
    return SystemCollector(b.locator(), **b.ps)


def _gpu(b: _Build) -> SyncCollector:
    return GpuCollector(nvml=b.nvml, locator=b.locator())


def _ollama(b: _Build) -> SyncCollector:
    # Idle unless the upstream answers /api/ps; read at the probe's pace.
    s = b.settings
    return OllamaCollector(HttpFetch(s.upstream, s.probe_timeout), s.max_models, refresh=s.probe_interval)


def _upstream(b: _Build) -> UpstreamProbe:
    s = b.settings
    return UpstreamProbe(s.upstream, interval=s.probe_interval, timeout=s.probe_timeout,
                         connect_timeout=s.connect_timeout, path=s.probe_path)


# Every collector, by the name ``--collectors`` enables it with (as node_exporter registers
# its collectors): a sampled one returns a SyncCollector, the probe an UpstreamProbe.
COLLECTORS: dict[str, Callable[[_Build], SyncCollector | UpstreamProbe]] = {
    "system": _system,
    "gpu": _gpu,
    "upstream": _upstream,
    "ollama": _ollama,
}


def build_collectors(
    settings: Settings,
    registry: CollectorRegistry,
    *,
    nvml: Any = None,
    psutil_module: Any = None,
) -> CollectorSet:
    """Build the collectors ``settings.collectors`` names and register them in ``registry``.

    ``nvml`` and ``psutil_module`` replace pynvml and psutil (tests, other platforms).
    """
    build = _Build(settings, nvml, {} if psutil_module is None else {"psutil_module": psutil_module})
    sync: list[SyncCollector] = []
    probe: UpstreamProbe | None = None
    for name in dict.fromkeys(settings.collectors):
        collector = COLLECTORS[name](build)
        if isinstance(collector, UpstreamProbe):
            probe = collector
        else:
            sync.append(collector)
    sampler = Sampler(sync, settings.sample_interval)
    collectors = CollectorSet(sampler, probe)
    for sampled in sync:
        registry.register(CachedCollector(sampler, sampled))
    if probe is not None:
        registry.register(probe)
    if sync or probe is not None:
        registry.register(StatusCollector(collectors.statuses))
    return collectors
