"""What a fault may leave behind in a relay running in this process: sockets, fds, tasks.

The relay runs in a uvicorn thread (``tests.support.servers.ThreadServer``) behind a
``LoopProbe`` that learns its event loop, so the test can list the loop's tasks. Its
sockets are told apart from the test's own by port: accepted on the relay's port, or
connected to the upstream's port.
"""

from __future__ import annotations

import asyncio
import os
from collections.abc import MutableMapping
from dataclasses import dataclass
from typing import Any

import psutil

from proxy.app import Sidecar
from tests.support.metrics import scrape
from tests.support.servers import ThreadServer
from tests.support.wait import eventually


class LoopProbe:
    """An ASGI wrapper that remembers the loop the app runs on (lifespan runs first)."""

    def __init__(self, app: Sidecar) -> None:
        self.app = app
        self.loop: asyncio.AbstractEventLoop | None = None

    async def __call__(self, scope: MutableMapping[str, Any], receive: Any, send: Any) -> None:
        if self.loop is None:
            self.loop = asyncio.get_running_loop()
        await self.app(scope, receive, send)

    def tasks(self) -> list[str]:
        async def names() -> list[str]:
            me = asyncio.current_task()
            return sorted(repr(t.get_coro()) for t in asyncio.all_tasks() if t is not me)

        assert self.loop is not None
        return asyncio.run_coroutine_threadsafe(names(), self.loop).result(timeout=5)


def open_fds(pid: int | None = None) -> int:
    return len(os.listdir(f"/proc/{pid or 'self'}/fd"))


def relay_sockets(relay_port: int, upstream_port: int | None) -> list[str]:
    """The relay's own TCP sockets (not its listener): from clients, and to the upstream."""
    out = []
    for c in psutil.Process().net_connections(kind="tcp"):
        if c.status == psutil.CONN_LISTEN:
            continue
        inbound = c.laddr and c.laddr.port == relay_port
        outbound = upstream_port is not None and c.raddr and c.raddr.port == upstream_port and c.laddr.port != upstream_port
        if inbound or outbound:
            out.append(f"{c.laddr} -> {c.raddr} {c.status}")
    return out


@dataclass
class Baseline:
    fds: int
    tasks: list[str]


class Relayed:
    """A relay in a thread, and the checks every fault test ends with."""

    def __init__(self, server: ThreadServer, sidecar: Sidecar, probe: LoopProbe) -> None:
        self.server = server
        self.sidecar = sidecar
        self.probe = probe

    @property
    def url(self) -> str:
        return self.server.url

    @property
    def port(self) -> int:
        return self.server.port

    def baseline(self) -> Baseline:
        return Baseline(open_fds(), self.probe.tasks())

    def assert_clean(self, base: Baseline, upstream_port: int | None, timeout: float = 3.0) -> None:
        """Nothing of the fault is left: no socket, fd or task beyond the baseline, none in flight."""
        sockets: list[str] = []

        def no_sockets() -> bool:
            sockets[:] = relay_sockets(self.port, upstream_port)
            return not sockets

        assert eventually(no_sockets, timeout), f"relay sockets left open: {sockets}"
        tasks: list[str] = []

        def no_tasks() -> bool:
            tasks[:] = self.probe.tasks()
            return len(tasks) <= len(base.tasks)

        assert eventually(no_tasks, timeout), f"tasks left behind: {sorted(set(tasks) - set(base.tasks))}"
        assert eventually(lambda: open_fds() <= base.fds, timeout), f"fds: {open_fds()} now, {base.fds} before"
        assert scrape(self.url).get("infermeter_requests_in_flight") == 0
