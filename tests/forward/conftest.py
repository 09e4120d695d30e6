"""Fixtures shared by the transport tests: each test runs per transport and per event loop."""

from __future__ import annotations

import contextlib
from collections.abc import AsyncIterator, Coroutine
from dataclasses import dataclass
from typing import Any, TypeVar

import pytest

from proxy.forward.base import Transport
from proxy.forward.httpx_transport import HttpxTransport
from proxy.forward.native import NativeTransport
from tests.forward.upstream import ScriptedServer, run

T = TypeVar("T")


@dataclass
class Env:
    client: str
    loop: str

    def transport(self, url: str, *, connect_timeout: float = 2.0, read_timeout: float = 5.0, max_connections: int = 16, **kw: Any) -> Transport:
        cls = NativeTransport if self.client == "native" else HttpxTransport
        return cls(url, connect_timeout, read_timeout, max_connections, **kw)

    @contextlib.asynccontextmanager
    async def serving(self, server: ScriptedServer, path: str = "",
                      **kw: Any) -> AsyncIterator[tuple[ScriptedServer, Transport]]:
        """A scripted upstream and a transport to it (at ``path`` under it), both closed on the way out."""
        async with server:
            transport = self.transport(server.url + path, **kw)
            try:
                yield server, transport
            finally:
                await transport.aclose()

    def run(self, coro: Coroutine[Any, Any, T]) -> T:
        return run(coro, self.loop)


# uvicorn runs the proxy on uvloop when it is installed, and on asyncio otherwise.
@pytest.fixture(params=[("native", "asyncio"), ("native", "uvloop"), ("httpx", "asyncio"), ("httpx", "uvloop")], ids="-".join)
def env(request: pytest.FixtureRequest) -> Env:
    return Env(*request.param)
