"""``create_app(settings)``: the sidecar's ASGI app. Wiring only; the work lives elsewhere.

The relay is mounted as raw ASGI for every path except the proxy's own few, which a
small FastAPI app serves (``/healthz``, ``/readyz``, and ``/metrics`` unless it has its
own port).
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import MutableMapping
from typing import Any

from fastapi import FastAPI
from fastapi.responses import JSONResponse
from prometheus_client import CollectorRegistry, GCCollector, PlatformCollector, ProcessCollector

from proxy import __version__
from proxy.collectors import CollectorSet, build_collectors
from proxy.config import Settings
from proxy.drilldown.setup import build_drilldown
from proxy.forward.relay import QuietAborts, Receive, Relay, Send
from proxy.forward.transports import make_transport
from proxy.metrics.definitions import Metrics
from proxy.metrics.exposition import metrics_endpoint
from proxy.metrics.recorder import Recorder

log = logging.getLogger("infermeter")

HEALTH_PATHS = ("/healthz", "/readyz")


class Sidecar:
    def __init__(self, settings: Settings, registry: CollectorRegistry | None = None) -> None:
        self.settings = settings
        self.registry = registry if registry is not None else CollectorRegistry()
        ProcessCollector(registry=self.registry)
        PlatformCollector(registry=self.registry)
        GCCollector(registry=self.registry)
        recorder = None
        if settings.observe:
            self.metrics: Metrics | None = Metrics(self.registry, settings)
            recorder = Recorder(self.metrics, settings)
        else:
            self.metrics = None
        self.transport = make_transport(settings)
        self.drilldown = build_drilldown(settings, self.registry)
        self.relay = Relay(settings, self.transport, recorder, self.drilldown)
        _install_once(logging.getLogger("uvicorn.error"), QuietAborts())
        self.collectors: CollectorSet = build_collectors(settings, self.registry)
        serve_metrics_here = settings.metrics_port is None
        # The proxy's own paths hide the upstream's of the same name (vLLM's /metrics):
        # --admin-prefix moves them aside for upstreams that need theirs reachable.
        prefix = settings.admin_prefix
        self.own_paths = frozenset(prefix + p for p in HEALTH_PATHS + (("/metrics",) if serve_metrics_here else ()))
        self.admin = self._admin_app(serve_metrics_here, prefix)
        self.metrics_app = self._metrics_only_app()

    def _admin_app(self, with_metrics: bool, prefix: str) -> FastAPI:
        app = FastAPI(title="infermeter", version=__version__, openapi_url=None, docs_url=None, redoc_url=None)

        @app.get(prefix + "/healthz")
        async def healthz() -> dict[str, str]:
            return {"status": "ok"}

        @app.get(prefix + "/readyz")
        async def readyz() -> JSONResponse:
            if self.collectors.upstream_ready():
                return JSONResponse({"status": "ready", "upstream": "up"})
            return JSONResponse({"status": "not ready", "upstream": "down"}, status_code=503)

        if with_metrics:
            app.add_route(prefix + "/metrics", metrics_endpoint(self.registry, self.settings.metrics_token), methods=["GET"])
        return app

    def _metrics_only_app(self) -> FastAPI:
        app = FastAPI(openapi_url=None, docs_url=None, redoc_url=None)
        app.add_route("/metrics", metrics_endpoint(self.registry, self.settings.metrics_token), methods=["GET"])
        return app

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
                try:
                    await self.collectors.start()
                except Exception as exc:  # a collector must never keep the relay from serving
                    log.exception("collectors failed to start: %s", exc)
                await send({"type": "lifespan.startup.complete"})
            elif message["type"] == "lifespan.shutdown":
                await self.collectors.stop()
                await self.transport.aclose()
                # Flushing spans and log lines blocks: off the loop, and bounded.
                await asyncio.to_thread(self.drilldown.close)
                await send({"type": "lifespan.shutdown.complete"})
                return


def _install_once(logger: logging.Logger, new: logging.Filter) -> None:
    if not any(type(f) is type(new) for f in logger.filters):
        logger.addFilter(new)


def create_app(settings: Settings, registry: CollectorRegistry | None = None) -> Sidecar:
    return Sidecar(settings, registry)
