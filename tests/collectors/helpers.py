"""A real upstream in a child process for the collector tests: the simulator, or the small
server in ``upstream_server.py`` (which can also start child processes of its own)."""

from __future__ import annotations

import sys

from tests.support.servers import ChildServer


class Upstream(ChildServer):
    """``kill()`` it as a crash would, and ``start()`` it again on the same port."""

    def __init__(self, port: int | None = None, simulator: bool = False, args: tuple[str, ...] = (),
                 ready_path: str = "/health") -> None:
        if simulator:
            argv = ["-m", "proxy", "simulate", "--port", "{port}", "--log-level", "warning", *args]
        else:
            argv = ["-m", "tests.collectors.upstream_server", "{port}", *args]
        super().__init__([sys.executable, *argv], port, ready_path=ready_path)
