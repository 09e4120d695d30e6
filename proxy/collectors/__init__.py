"""Host, GPU, upstream and Ollama collectors, each enabled by name in ``--collectors``.

``build_collectors`` registers them into the app's registry (nothing is registered at
import time); the app starts and stops the returned ``CollectorSet`` in its lifespan.
System and GPU are read by the sampler thread and served from its cache; the upstream
probe is an asyncio task. None of them can block ``/metrics`` or take it down.
"""

from __future__ import annotations

import asyncio
from collections.abc import Iterator
from typing import Any

from prometheus_client import CollectorRegistry

from proxy.collectors.base import Status, SyncCollector
from proxy.collectors.exposition import CachedCollector, StatusCollector
from proxy.collectors.gpu import GpuCollector
from proxy.collectors.ollama import OllamaCollector, http_fetch
from proxy.collectors.process import UpstreamProcessLocator
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
    enabled = set(settings.collectors)
    ps: dict[str, Any] = {} if psutil_module is None else {"psutil_module": psutil_module}
    locator = None
    if enabled & {"system", "gpu"}:
        locator = UpstreamProcessLocator(settings.upstream_url, settings.upstream_pid, **ps)
    sync: list[SyncCollector] = []
    if "system" in enabled:
        sync.append(SystemCollector(locator, **ps))
    if "gpu" in enabled:
        sync.append(GpuCollector(nvml=nvml, locator=locator))
    if "ollama" in enabled:
        # Idle unless the upstream answers /api/ps; read at the probe's pace.
        fetch = http_fetch(settings.upstream, settings.probe_timeout)
        sync.append(OllamaCollector(fetch, settings.max_models, refresh=settings.probe_interval))
    sampler = Sampler(sync, settings.sample_interval)
    probe = None
    if "upstream" in enabled:
        probe = UpstreamProbe(
            settings.upstream,
            interval=settings.probe_interval,
            timeout=settings.probe_timeout,
            connect_timeout=settings.connect_timeout,
            path=settings.probe_path,
        )
    collectors = CollectorSet(sampler, probe)
    for collector in sync:
        registry.register(CachedCollector(sampler, collector))
    if probe is not None:
        registry.register(probe)
    if sync or probe is not None:
        registry.register(StatusCollector(collectors.statuses))
    return collectors
