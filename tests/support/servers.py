"""Real servers for tests: uvicorn in a thread, or a CLI command in a child process.

Everything binds 127.0.0.1 on a free port and is stopped by the context manager.
"""

from __future__ import annotations

import contextlib
import os
import socket
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from typing import Any

import uvicorn

from proxy.children import stop, wait_http_ok


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


class ThreadServer:
    """A uvicorn server for one ASGI app, running its own event loop in a thread."""

    def __init__(self, app: Any, port: int = 0, **config: Any) -> None:
        config.setdefault("log_level", "warning")
        config.setdefault("access_log", False)
        config.setdefault("lifespan", "on")
        self.server = uvicorn.Server(uvicorn.Config(app, host="127.0.0.1", port=port, **config))
        self.thread = threading.Thread(target=self.server.run, daemon=True)
        self.port = 0

    def __enter__(self) -> ThreadServer:
        self.thread.start()
        deadline = time.monotonic() + 10
        while not self.server.started:
            if not self.thread.is_alive() or time.monotonic() > deadline:
                raise RuntimeError("uvicorn did not start")
            time.sleep(0.01)
        self.port = self.server.servers[0].sockets[0].getsockname()[1]
        return self

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def __exit__(self, *exc: object) -> None:
        self.server.should_exit = True
        self.thread.join(timeout=10)


@contextlib.contextmanager
def serve_app(app: Any, port: int = 0, **config: Any) -> Iterator[ThreadServer]:
    with ThreadServer(app, port=port, **config) as server:
        yield server


class ChildProcess:
    """``python -m proxy ARGS`` in a child process, ready once ``ready_path`` answers 200."""

    def __init__(self, args: list[str], port: int, ready_path: str = "/healthz", env: dict[str, str] | None = None) -> None:
        self.args = args
        self.port = port
        self.ready_path = ready_path
        self.env = {**os.environ, **(env or {})}
        self.proc: subprocess.Popen[bytes] | None = None

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    @property
    def pid(self) -> int:
        assert self.proc is not None
        return self.proc.pid

    def __enter__(self) -> ChildProcess:
        self.proc = subprocess.Popen([sys.executable, "-m", "proxy", *self.args], env=self.env)
        wait_http_ok(self.url + self.ready_path, proc=self.proc)
        return self

    def stop(self) -> None:
        stop(self.proc)

    def __exit__(self, *exc: object) -> None:
        self.stop()
