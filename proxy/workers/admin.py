"""The supervisor's own paths: health, readiness from the one upstream probe, merged metrics."""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Iterable

from fastapi import FastAPI
from fastapi.responses import JSONResponse
from prometheus_client import CollectorRegistry
from prometheus_client.metrics_core import Metric

from proxy.config import Settings
from proxy.metrics.exposition import metrics_endpoint
from proxy.workers.merge import Merger


class MergedCollector:
    """The one collector of the registry ``/metrics`` renders: the supervisor's own
    families merged with every worker's (``proxy.workers.merge``)."""

    def __init__(self, merger: Merger, own: CollectorRegistry) -> None:
        self._merger = merger
        self._own = own

    def collect(self) -> Iterable[Metric]:
        return self._merger.merged(self._own.collect())


def render_registry(merger: Merger, own: CollectorRegistry) -> CollectorRegistry:
    registry = CollectorRegistry(auto_describe=False)
    registry.register(MergedCollector(merger, own))
    return registry


def admin_app(settings: Settings, registry: CollectorRegistry, ready: Callable[[], bool],
              refresh: Callable[[], Awaitable[None]], with_metrics: bool) -> FastAPI:
    """What the workers forward to (same paths as the single-process admin app)."""
    prefix = settings.admin_prefix
    app = FastAPI(title="infermeter", openapi_url=None, docs_url=None, redoc_url=None)

    @app.get(prefix + "/healthz")
    async def healthz() -> dict[str, str]:
        return {"status": "ok"}

    @app.get(prefix + "/readyz")
    async def readyz() -> JSONResponse:
        if ready():
            return JSONResponse({"status": "ready", "upstream": "up"})
        return JSONResponse({"status": "not ready", "upstream": "down"}, status_code=503)

    if with_metrics:
        app.add_route(prefix + "/metrics", metrics_endpoint(registry, settings.metrics_token, refresh), methods=["GET"])
    return app


def metrics_app(settings: Settings, registry: CollectorRegistry, refresh: Callable[[], Awaitable[None]]) -> FastAPI:
    """``--metrics-port``: the supervisor listens there itself."""
    app = FastAPI(openapi_url=None, docs_url=None, redoc_url=None)
    app.add_route("/metrics", metrics_endpoint(registry, settings.metrics_token, refresh), methods=["GET"])
    return app
