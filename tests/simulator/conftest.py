"""A real simulator on a free loopback port, per test, with the configuration it asks for.

Each server's ``.app`` is its ``SimulatorApp`` (its ``stats`` and ``config``).
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from contextlib import ExitStack
from typing import Any

import pytest

from proxy.simulator import SimConfig, create_app
from tests.support.servers import ThreadServer


def _starter(stack: ExitStack) -> Callable[..., ThreadServer]:
    def start(**config: Any) -> ThreadServer:
        config.setdefault("gc_freeze", False)
        return stack.enter_context(ThreadServer(create_app(SimConfig(**config))))

    return start


@pytest.fixture
def simulator(servers: ExitStack) -> Callable[..., ThreadServer]:
    """``simulator(ttft=..., tbt=...)`` starts a fresh simulator with that SimConfig."""
    return _starter(servers)


@pytest.fixture(scope="module")
def fast() -> Iterator[ThreadServer]:
    """Quick timing for format and SDK tests: 10 ms to first token, 1 ms between tokens.

    Shared by a module's tests, so its counters are not fresh: use ``simulator`` for that.
    """
    with ExitStack() as stack:
        yield _starter(stack)(ttft=0.01, tbt=0.001, output_tokens=8)
