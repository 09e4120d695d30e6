"""The proxy's own surface, the same in both runtimes: ``/healthz``, ``/readyz``, ``/metrics``
and the registry ``/metrics`` starts from.

One process mounts these routes beside the relay. Under ``--workers`` the supervisor
serves them on its private socket (and on ``--metrics-port``), and each worker hands it
``handoff_paths``: the answers that need every worker or the one upstream probe.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable

from fastapi import FastAPI
from fastapi.responses import JSONResponse
from prometheus_client import CollectorRegistry, GCCollector, PlatformCollector, ProcessCollector

from proxy import __version__
from proxy.config import Settings
from proxy.metrics.exposition import metrics_endpoint

HEALTHZ, READYZ, METRICS = "/healthz", "/readyz", "/metrics"

Refresh = Callable[[], Awaitable[None]]


def process_registry(registry: CollectorRegistry | None = None) -> CollectorRegistry:
    """``registry`` (a new one by default) with this process's own series: prometheus-client's
    process, platform and GC collectors. Never the global registry: two apps in one
    process (the tests) must not share series."""
    registry = registry if registry is not None else CollectorRegistry()
    ProcessCollector(registry=registry)
    PlatformCollector(registry=registry)
    GCCollector(registry=registry)
    return registry


def own_paths(settings: Settings) -> frozenset[str]:
    """The paths the proxy answers itself on ``--port``.

    They hide the upstream's paths of the same name (vLLM's /metrics): ``--admin-prefix``
    moves them aside for upstreams that need theirs reachable.
    """
    paths = (HEALTHZ, READYZ) + ((METRICS,) if settings.metrics_port is None else ())
    return frozenset(settings.admin_prefix + path for path in paths)


def handoff_paths(settings: Settings) -> frozenset[str]:
    """What a worker passes to the supervisor: readiness (the one upstream probe) and
    metrics (every worker's counts). ``/healthz`` stays: it says that this process serves."""
    return own_paths(settings) - {settings.admin_prefix + HEALTHZ}


def admin_app(settings: Settings, registry: CollectorRegistry, ready: Callable[[], bool],
              refresh: Refresh | None = None) -> FastAPI:
    """``own_paths``: health, readiness from ``ready()``, and ``/metrics`` unless it has its
    own port. ``refresh`` runs before each authorised render (the supervisor collects its workers)."""
    prefix = settings.admin_prefix
    app = FastAPI(title="infermeter", version=__version__, openapi_url=None, docs_url=None, redoc_url=None)

    @app.get(prefix + HEALTHZ)
    async def healthz() -> dict[str, str]:
        return {"status": "ok"}

    @app.get(prefix + READYZ)
    async def readyz() -> JSONResponse:
        if ready():
            return JSONResponse({"status": "ready", "upstream": "up"})
        return JSONResponse({"status": "not ready", "upstream": "down"}, status_code=503)

    if settings.metrics_port is None:
        app.add_route(prefix + METRICS, metrics_endpoint(registry, settings.metrics_token, refresh), methods=["GET"])
    return app


def metrics_app(settings: Settings, registry: CollectorRegistry, refresh: Refresh | None = None) -> FastAPI:
    """``--metrics-port``: ``/metrics`` alone, at the root."""
    app = FastAPI(openapi_url=None, docs_url=None, redoc_url=None)
    app.add_route(METRICS, metrics_endpoint(registry, settings.metrics_token, refresh), methods=["GET"])
    return app
