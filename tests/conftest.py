"""Fixtures shared by the whole suite: a simulator and a proxy on real sockets.

Where a folder tests one module it mirrors the package (``tests/stream/``,
``tests/forward/test_relay.py``, ``tests/metrics/test_recorder.py``). The other folders
are organised by concern and cut across modules: ``formats`` (every wire format through
the proxy), ``faults`` (misbehaving clients and upstreams, and nothing left behind),
``stack`` (the compose stack, dashboards, rules and a live Prometheus), ``soak``,
``llamacpp`` (the real llama-server), ``gpu`` (a real NVIDIA driver), ``drilldown``
(traces, exemplars, the request log) and ``workers``.

What several folders need lives once in ``tests/support/``: servers in a thread or a
child process (``servers``), reading ``/metrics`` (``metrics``) and waiting (``wait``).
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from contextlib import ExitStack
from typing import Any

import pytest

from tests.support.servers import ThreadServer, proxy_server, sidecar, simulator_server
from tests.support.sdk import close_all


@pytest.fixture(autouse=True)
def _close_sdk_clients() -> Iterator[None]:
    """SDK clients a test made with tests.support.sdk.closing are closed when it ends."""
    yield
    close_all()


@pytest.fixture
def servers() -> Iterator[ExitStack]:
    with ExitStack() as stack:
        yield stack


@pytest.fixture
def start_simulator(servers: ExitStack) -> Callable[..., ThreadServer]:
    """Start a simulated LLM server in a thread: ``start_simulator(ttft=0.05, tbt=0.01)``."""

    def start(**config: Any) -> ThreadServer:
        return servers.enter_context(simulator_server(**config))

    return start


@pytest.fixture
def start_proxy(servers: ExitStack) -> Callable[..., ThreadServer]:
    """Start infermeter in a thread in front of ``upstream``; the server's ``.app`` is the Sidecar."""

    def start(upstream: str, **settings: Any) -> ThreadServer:
        return servers.enter_context(proxy_server(sidecar(upstream, **settings)))

    return start


@pytest.fixture
def sim(start_simulator: Callable[..., ThreadServer]) -> ThreadServer:
    return start_simulator(ttft=0.02, tbt=0.005, output_tokens=12)


@pytest.fixture
def proxy(start_proxy: Callable[..., ThreadServer], sim: ThreadServer) -> ThreadServer:
    return start_proxy(sim.url)
