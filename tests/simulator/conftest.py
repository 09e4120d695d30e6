"""A real simulator on a free loopback port, per test, with the configuration it asks for."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from contextlib import AbstractContextManager, contextmanager
from typing import Any

import pytest

from proxy.simulator import SimConfig, SimulatorApp, create_app
from tests.support.servers import ThreadServer, serve_app


class Running:
    def __init__(self, app: SimulatorApp, server: ThreadServer) -> None:
        self.app = app
        self.server = server
        self.url = server.url


@contextmanager
def _servers() -> Iterator[Callable[..., Running]]:
    stack: list[AbstractContextManager[ThreadServer]] = []

    def start(**config: Any) -> Running:
        config.setdefault("gc_freeze", False)
        app = create_app(SimConfig(**config))
        manager = serve_app(app)
        stack.append(manager)
        return Running(app, manager.__enter__())

    try:
        yield start
    finally:
        while stack:
            stack.pop().__exit__(None, None, None)


@pytest.fixture
def simulator() -> Iterator[Callable[..., Running]]:
    """``simulator(ttft=..., tbt=...)`` starts a fresh simulator with that SimConfig."""
    with _servers() as start:
        yield start


@pytest.fixture(scope="module")
def fast() -> Iterator[Running]:
    """Quick timing for format and SDK tests: 10 ms to first token, 1 ms between tokens.

    Shared by a module's tests, so its counters are not fresh: use ``simulator`` for that.
    """
    with _servers() as start:
        yield start(ttft=0.01, tbt=0.001, output_tokens=8)
