"""Fixtures shared by the transport tests: each test runs per transport and per event loop,
against a scripted upstream (tests/support/scripted_upstream.py) whose handlers run in
threads of their own, so a script that blocks never blocks the transport's loop."""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator, Coroutine
from dataclasses import dataclass
from typing import Any, TypeVar

import pytest
import uvloop

from proxy.forward.base import Transport, UpstreamResponse
from proxy.forward.httpx_transport import HttpxTransport
from proxy.forward.native import NativeTransport
from tests.support.scripted_upstream import RawUpstream

T = TypeVar("T")


def run(coro: Coroutine[Any, Any, T], loop_kind: str) -> T:
    """Run ``coro`` on a fresh asyncio or uvloop loop (uvicorn picks uvloop when installed)."""
    loop = uvloop.new_event_loop() if loop_kind == "uvloop" else asyncio.new_event_loop()
    try:
        return loop.run_until_complete(coro)
    finally:
        loop.run_until_complete(loop.shutdown_asyncgens())
        loop.close()


async def read_all(response: UpstreamResponse) -> bytes:
    try:
        return b"".join([chunk async for chunk in response.aiter_raw()])
    finally:
        await response.aclose()


async def get(transport: Transport, target: str = "/", method: str = "GET", body: bytes = b"") -> tuple[int, bytes]:
    response = await transport.request(method, target, [], body)
    return response.status, await read_all(response)


@dataclass
class Env:
    client: str
    loop: str

    def transport(self, url: str, *, connect_timeout: float = 2.0, read_timeout: float = 5.0, max_connections: int = 16, **kw: Any) -> Transport:
        cls = NativeTransport if self.client == "native" else HttpxTransport
        return cls(url, connect_timeout, read_timeout, max_connections, **kw)

    @contextlib.asynccontextmanager
    async def serving(self, server: RawUpstream, path: str = "",
                      **kw: Any) -> AsyncIterator[tuple[RawUpstream, Transport]]:
        """A scripted upstream and a transport to it (at ``path`` under it), both closed on the way out."""
        with server:
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
