"""Fixtures for the fault suite: a relay in a thread that the checks in probes.py can see into."""

from __future__ import annotations

from collections.abc import Callable
from contextlib import ExitStack
from typing import Any

import pytest

from tests.faults.probes import LoopProbe, Relayed
from tests.support.servers import proxy_server, sidecar


@pytest.fixture
def relay(servers: ExitStack) -> Callable[..., Relayed]:
    """``relay(upstream_url, **Settings fields)``: infermeter in a thread, collectors off."""

    def start(upstream: str, server_options: dict[str, Any] | None = None, **settings: Any) -> Relayed:
        app = sidecar(upstream, **settings)
        probe = LoopProbe(app)
        server = servers.enter_context(proxy_server(app, probe, **(server_options or {})))
        return Relayed(server, app, probe)

    return start


@pytest.fixture(params=["native", "httpx"])
def upstream_client(request: pytest.FixtureRequest) -> str:
    return str(request.param)
