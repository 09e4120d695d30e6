"""Fixtures shared by the whole suite: a simulator and a proxy on real sockets."""

from __future__ import annotations

import os

from collections.abc import Callable, Iterator
from contextlib import ExitStack
from typing import Any

import pytest

from proxy.app import Sidecar, create_app
from proxy.config import Settings
from proxy.server import hot_path_options
from proxy.simulator.app import create_app as create_simulator
from proxy.simulator.config import SimConfig
from tests.support.servers import ThreadServer


@pytest.fixture
def servers() -> Iterator[ExitStack]:
    with ExitStack() as stack:
        yield stack


@pytest.fixture
def start_simulator(servers: ExitStack) -> Callable[..., ThreadServer]:
    """Start a simulated LLM server in a thread: ``start_simulator(ttft=0.05, tbt=0.01)``."""

    def start(**config: Any) -> ThreadServer:
        config.setdefault("gc_freeze", False)
        app = create_simulator(SimConfig(**config))
        server = servers.enter_context(ThreadServer(app))
        server.app = app  # type: ignore[attr-defined]
        return server

    return start


@pytest.fixture
def start_proxy(servers: ExitStack) -> Callable[..., ThreadServer]:
    """Start infermeter in a thread in front of ``upstream``; the server's ``.app`` is the Sidecar."""

    def start(upstream: str, **settings: Any) -> ThreadServer:
        settings.setdefault("collectors", ())
        # The whole suite can run against the fallback transport too.
        settings.setdefault("upstream_client", os.environ.get("INFERMETER_TEST_UPSTREAM_CLIENT", "native"))
        app: Sidecar = create_app(Settings(upstream=upstream, port=0, **settings))
        server = servers.enter_context(ThreadServer(app, **hot_path_options(app.settings.head_limits)))
        server.app = app  # type: ignore[attr-defined]
        return server

    return start


@pytest.fixture
def sim(start_simulator: Callable[..., ThreadServer]) -> ThreadServer:
    return start_simulator(ttft=0.02, tbt=0.005, output_tokens=12)


@pytest.fixture
def proxy(start_proxy: Callable[..., ThreadServer], sim: ThreadServer) -> ThreadServer:
    return start_proxy(sim.url)
