"""``create_app(settings)``: the sidecar's ASGI app. Wiring only; the work lives elsewhere.

The relay is mounted as raw ASGI for every path except the proxy's own few, which the
admin app serves (``proxy.admin``: ``/healthz``, ``/readyz``, and ``/metrics`` unless it
has its own port). ``serve --workers N`` runs this same app in every worker.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import MutableMapping
from typing import Any

from prometheus_client import CollectorRegistry

from proxy.admin import admin_app, metrics_app, own_paths, process_registry
from proxy.attribution.local import build_attribution, local_meter
from proxy.collectors import CollectorSet, build_collectors
from proxy.config import Settings
from proxy.drilldown.factory import build_drilldown
from proxy.forward.relay import QuietAborts, Receive, Relay, Send
from proxy.forward.transports import make_transport
from proxy.metrics.definitions import Metrics
from proxy.metrics.labels import ModelLabels
from proxy.metrics.recorder import Recorder
from proxy.metrics.tenants import TenantLabels
from proxy.quality.hub import build_quality


class Sidecar:
    """One relay process's app: the relay, its recorder and registry, the proxy's own paths.

    ``models`` and ``tenants`` replace the recorder's own ``--max-models`` and
    ``--max-tenants`` caps (``--workers`` shares them).
    """

    def __init__(self, settings: Settings, registry: CollectorRegistry | None = None,
                 models: ModelLabels | None = None, tenants: TenantLabels | None = None,
                 worker: bool = False) -> None:
        self.settings = settings
        self.registry = process_registry(registry)
        recorder = None
        if settings.observe:
            self.metrics: Metrics | None = Metrics(self.registry, settings)
            recorder = Recorder(self.metrics, settings, models, tenants)
        else:
            self.metrics = None
        self.transport = make_transport(settings)
        self.drilldown = build_drilldown(settings, self.registry)
        log_lines = self.drilldown.request_log
        self.quality = build_quality(settings, self.registry, log_lines.put_event if log_lines else None) \
            if settings.observe else None
        # GPU attribution (DESIGN.md section 14): a --workers worker holds requests, its
        # supervisor reads the GPUs (proxy.attribution.remote).
        self.attribution = build_attribution(settings, self.registry, log_lines, worker)
        self.relay = Relay(settings, self.transport, recorder, self.drilldown, self.quality, self.attribution)
        _install_once(logging.getLogger("uvicorn.error"), QuietAborts())
        self.collectors: CollectorSet = build_collectors(
            settings, self.registry, gpu_sink=local_meter(self.attribution))
        self.own_paths = own_paths(settings)
        self.admin = admin_app(settings, self.registry, self.collectors.upstream_ready)
        self.metrics_app = metrics_app(settings, self.registry)

    async def __call__(self, scope: MutableMapping[str, Any], receive: Receive, send: Send) -> None:
        kind = scope["type"]
        if kind == "http":
            if scope["path"] in self.own_paths:
                await self.admin(scope, receive, send)
            else:
                await self.relay(scope, receive, send)
        elif kind == "lifespan":
            await self._lifespan(receive, send)
        else:
            await send({"type": "websocket.close", "code": 1003})

    async def _lifespan(self, receive: Receive, send: Send) -> None:
        while True:
            message = await receive()
            if message["type"] == "lifespan.startup":
                await self.collectors.start()
                if self.quality is not None:
                    self.quality.start()
                await send({"type": "lifespan.startup.complete"})
            elif message["type"] == "lifespan.shutdown":
                await self.collectors.stop()
                if self.attribution is not None:
                    self.attribution.close()
                if self.quality is not None:
                    await self.quality.close()
                await self.transport.aclose()
                self.relay.close()
                # Flushing spans and log lines blocks: off the loop, and bounded.
                await asyncio.to_thread(self.drilldown.close)
                await send({"type": "lifespan.shutdown.complete"})
                return


def _install_once(logger: logging.Logger, new: logging.Filter) -> None:
    if not any(type(f) is type(new) for f in logger.filters):
        logger.addFilter(new)


def create_app(settings: Settings, registry: CollectorRegistry | None = None,
               models: ModelLabels | None = None, tenants: TenantLabels | None = None,
               worker: bool = False) -> Sidecar:
    return Sidecar(settings, registry, models, tenants, worker)
