"""One relay process: the single-process app, its own registry, on the supervisor's socket."""

from __future__ import annotations

import dataclasses
import logging
import os
import signal
import socket
from dataclasses import dataclass

import uvicorn

from proxy.admin import handoff_paths
from proxy.app import create_app
from proxy.config import Settings
from proxy.attribution.remote import serve_attribution
from proxy.server import configure_logging, run_loop, uvicorn_config
from proxy.workers.channel import serve_snapshots
from proxy.workers.handoff import Handoff
from proxy.workers.models import SharedModelLabels, SharedTenantLabels

log = logging.getLogger("infermeter.workers")


@dataclass(frozen=True)
class WorkerSpec:
    settings: Settings
    index: int
    supervisor_uds: str
    models_path: str
    tenants_path: str


def run_worker(spec: WorkerSpec, listener: socket.socket, channel: socket.socket,
               attribution: socket.socket | None = None) -> None:
    """Entry point of a spawned worker: serves its slot's ``listener`` (the supervisor keeps
    it listening across restarts); returns when uvicorn has shut down."""
    settings = spec.settings
    configure_logging(settings.log_level)
    # Host, GPU, probe and Ollama collectors run once, in the supervisor.
    sidecar = create_app(dataclasses.replace(settings, collectors=()),
                         models=SharedModelLabels(settings.max_models, spec.models_path),
                         tenants=SharedTenantLabels(settings.max_tenants, spec.tenants_path) if settings.tenants_on else None,
                         worker=True)
    app = Handoff(sidecar, handoff_paths(settings), spec.supervisor_uds)
    # A supervisor that died (even by SIGKILL) closes the channel: drain and go too.
    serve_snapshots(channel, sidecar.registry, lambda: os.kill(os.getpid(), signal.SIGTERM))
    if attribution is not None:
        if sidecar.attribution is not None:
            serve_attribution(attribution, sidecar.attribution)
        else:
            attribution.close()
    config = uvicorn_config(app, settings.host, settings.port, settings.log_level, limits=settings.head_limits)
    server = uvicorn.Server(config)
    run_loop(config, lambda: server.serve(sockets=[listener]))
