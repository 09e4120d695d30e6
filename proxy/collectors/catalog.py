"""The collectors by name: the table ``--collectors`` picks from, and ``build_collectors``.

``build_collectors`` registers what the settings name into the app's registry (nothing
is registered at import time) and returns the ``CollectorSet`` the app starts and stops.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from prometheus_client import CollectorRegistry

from proxy.collectors.base import SyncCollector
from proxy.collectors.cached import CachedCollector, StatusCollector
from proxy.collectors.gpu import GpuCollector, GpuReading
from proxy.collectors.locator import UpstreamProcessLocator
from proxy.collectors.ollama import HttpFetch, OllamaCollector
from proxy.collectors.running import CollectorSet
from proxy.collectors.sampler import Sampler
from proxy.collectors.system import SystemCollector
from proxy.collectors.upstream import UpstreamProbe
from proxy.config import KNOWN_COLLECTORS, Settings


@dataclass
class _Build:
    """What the collector factories share while one app's collectors are built."""

    settings: Settings
    nvml: Any
    ps: dict[str, Any]
    gpu_sink: Callable[[list[GpuReading]], None] | None = None
    _locator: UpstreamProcessLocator | None = None

    def locator(self) -> UpstreamProcessLocator:
        # One finder for every collector that needs the upstream's process (system, gpu).
        if self._locator is None:
            self._locator = UpstreamProcessLocator(self.settings.upstream_url, self.settings.upstream_pid, **self.ps)
        return self._locator


def _system(b: _Build) -> SyncCollector:
    return SystemCollector(b.locator(), **b.ps)


def _gpu(b: _Build) -> SyncCollector:
    # Asked for by name, a GPU that cannot be read is a failure; by default, a host
    # without a driver simply has no GPU series.
    return GpuCollector(nvml=b.nvml, locator=b.locator(), required=b.settings.collectors is not None, sink=b.gpu_sink)


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
    gpu_sink: Callable[[list[GpuReading]], None] | None = None,
) -> CollectorSet:
    """Build the collectors ``settings.collectors`` names and register them in ``registry``.

    ``nvml`` and ``psutil_module`` replace pynvml and psutil (tests, other platforms);
    ``gpu_sink`` gets every complete GPU read (attribution).
    """
    build = _Build(settings, nvml, {} if psutil_module is None else {"psutil_module": psutil_module}, gpu_sink)
    sync: list[SyncCollector] = []
    probe: UpstreamProbe | None = None
    names = KNOWN_COLLECTORS if settings.collectors is None else settings.collectors
    for name in dict.fromkeys(names):
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
