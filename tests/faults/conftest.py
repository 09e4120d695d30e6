"""Fixtures for the fault suite: a relay in a thread that the checks in probes.py can see into."""

from __future__ import annotations

from collections.abc import Callable
from contextlib import ExitStack
from typing import Any

import pytest

from proxy.app import create_app
from proxy.config import Settings
from proxy.server import hot_path_options
from tests.faults.probes import LoopProbe, Relayed
from tests.support.servers import ThreadServer


@pytest.fixture
def relay(servers: ExitStack) -> Callable[..., Relayed]:
    """``relay(upstream_url, **Settings fields)``: infermeter in a thread, collectors off."""

    def start(upstream: str, server_options: dict[str, Any] | None = None, **settings: Any) -> Relayed:
        settings.setdefault("collectors", ())
        sidecar = create_app(Settings(upstream=upstream, port=0, **settings))
        probe = LoopProbe(sidecar)
        server = servers.enter_context(ThreadServer(probe, **{**hot_path_options(sidecar.settings.head_limits),
                                                               **(server_options or {})}))
        return Relayed(server, sidecar, probe)

    return start


@pytest.fixture(params=["native", "httpx"])
def upstream_client(request: pytest.FixtureRequest) -> str:
    return str(request.param)
