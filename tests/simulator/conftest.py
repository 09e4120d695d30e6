"""A real simulator on a free loopback port, per test, with the configuration it asks for.

Each server's ``.app`` is its ``SimulatorApp`` (its ``stats`` and ``config``).
"""

from __future__ import annotations

from collections.abc import Callable, Iterator

import pytest

from tests.support.servers import ThreadServer, simulator_server


@pytest.fixture
def simulator(start_simulator: Callable[..., ThreadServer]) -> Callable[..., ThreadServer]:
    """``simulator(ttft=..., tbt=...)`` starts a fresh simulator with that SimConfig."""
    return start_simulator


@pytest.fixture(scope="module")
def fast() -> Iterator[ThreadServer]:
    """Quick timing for format and SDK tests: 10 ms to first token, 1 ms between tokens.

    Shared by a module's tests, so its counters are not fresh: use ``simulator`` for that.
    """
    with simulator_server(ttft=0.01, tbt=0.001, output_tokens=8) as server:
        yield server
