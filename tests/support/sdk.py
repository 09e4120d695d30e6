"""SDK clients (openai, anthropic, ollama) that are closed when the test ends.

Each keeps an HTTP connection pool; left to the garbage collector, its sockets raise
ResourceWarning, which the suite treats as an error. ``closing(client)`` hands the
client back and registers it; the autouse fixture in tests/conftest.py closes them all.
"""

from __future__ import annotations

from typing import Any, Protocol, TypeVar


class _Closable(Protocol):
    def close(self) -> Any: ...


C = TypeVar("C", bound=_Closable)
_open: list[_Closable] = []


def closing(client: C) -> C:
    _open.append(client)
    return client


def close_all() -> None:
    while _open:
        _open.pop().close()
