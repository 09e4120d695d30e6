"""Servers shared by the whole folder: a simulator on the shared schedule and a scripted
upstream, each with the proxy in front.

They live for the package, not per test: starting and stopping two uvicorn servers
costs ~0.3 s, and every test reads its metrics as the change its own calls made
(``expect.measured``) under model labels of its own, so tests cannot see each other's.
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from contextlib import ExitStack
from dataclasses import dataclass

import pytest

from tests.formats.expect import SCHEDULE
from tests.formats.scripted import SSE, ScriptedUpstream, Step
from tests.support.servers import ThreadServer, proxy_server, sidecar, simulator_server


@dataclass(frozen=True)
class Route:
    """An upstream and the proxy in front of it: ``direct`` and ``proxied`` base URLs."""

    upstream: ThreadServer
    proxy: ThreadServer

    @property
    def direct(self) -> str:
        return self.upstream.url

    @property
    def proxied(self) -> str:
        return self.proxy.url


class Stage:
    """The scripted upstream behind its proxy; ``play`` sets what it answers next."""

    def __init__(self, app: ScriptedUpstream, route: Route) -> None:
        self.app = app
        self.route = route

    def play(self, steps: Sequence[Step], content_type: bytes = SSE,
             headers: tuple[tuple[bytes, bytes], ...] = ()) -> Route:
        self.app.steps = tuple(steps)
        self.app.content_type = content_type
        self.app.headers = headers
        return self.route


def _serve(stack: ExitStack, upstream: ThreadServer) -> Route:
    return Route(upstream, stack.enter_context(proxy_server(sidecar(upstream.url))))


@pytest.fixture(scope="package")
def route() -> Iterator[Route]:
    """The simulator (TTFT 0.05 s, TBT 0.01 s, 8 tokens) and the proxy in front of it."""
    with ExitStack() as stack:
        sim = stack.enter_context(simulator_server(**SCHEDULE))
        yield _serve(stack, sim)


@pytest.fixture(scope="package")
def scripted() -> Iterator[Stage]:
    with ExitStack() as stack:
        app = ScriptedUpstream(())
        yield Stage(app, _serve(stack, stack.enter_context(ThreadServer(app))))
