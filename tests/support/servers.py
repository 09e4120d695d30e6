"""Real servers for tests: uvicorn in a thread (infermeter, simulators, scripted upstreams),
or any server in a child process.

Everything binds 127.0.0.1 on a free port and is stopped by the context manager.
"""

from __future__ import annotations

import contextlib
import os
import signal
import socket
import subprocess
import sys
import threading
import time
from pathlib import Path
from typing import TYPE_CHECKING, Any

import psutil
import uvicorn

from proxy.app import Sidecar, create_app
from proxy.children import stop, wait_http_ok
from proxy.config import Settings
from proxy.server import hot_path_options
from proxy.simulator.app import create_app as create_simulator
from proxy.simulator.config import SimConfig

if TYPE_CHECKING:
    from typing_extensions import Self  # typing.Self from Python 3.11

REPO = Path(__file__).resolve().parents[2]


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
        self.app = app
        self.thread = threading.Thread(target=self.server.run, daemon=True)
        self.port = 0

    def __enter__(self) -> Self:
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


def simulator_server(**config: Any) -> ThreadServer:
    """The simulator with this ``SimConfig`` in a thread; no GC freeze, which would outlive the test."""
    config.setdefault("gc_freeze", False)
    return ThreadServer(create_simulator(SimConfig(**config)))


def sidecar(upstream: str, **settings: Any) -> Sidecar:
    """infermeter as the suite runs it: collectors off, on the transport that
    ``INFERMETER_TEST_UPSTREAM_CLIENT`` names (the whole suite can run on the fallback)."""
    settings.setdefault("collectors", ())
    settings.setdefault("upstream_client", os.environ.get("INFERMETER_TEST_UPSTREAM_CLIENT", "native"))
    return create_app(Settings(upstream=upstream, port=0, **settings))


def proxy_server(app: Sidecar, asgi: Any = None, **config: Any) -> ThreadServer:
    """``app`` in a uvicorn thread with the server options ``infermeter serve`` uses;
    ``asgi`` wraps it when a test must see into it (``.app`` stays the Sidecar)."""
    server = ThreadServer(asgi or app, **{**hot_path_options(app.settings.head_limits), **config})
    server.app = app
    return server


class ChildServer:
    """A server in a child process on 127.0.0.1:``port``, ready once ``ready_path`` answers 200.

    ``argv`` may name ``{port}``, filled in with the port (a free one by default). Its output goes to ``log`` when
    given (a pipe nobody reads would fill and stall it), and the log's tail is in the error
    when it does not come up. ``start()`` again after ``stop()`` or ``kill()`` restarts it
    on the same port.
    """

    def __init__(self, argv: list[str], port: int | None = None, ready_path: str = "/healthz",
                 env: dict[str, str] | None = None, log: Path | None = None, ready_timeout: float = 20.0) -> None:
        self.port = port or free_port()
        self.argv = [arg.replace("{port}", str(self.port)) for arg in argv]
        self.ready_path = ready_path
        self.env = {**os.environ, "PYTHONPATH": str(REPO), **(env or {})}
        self.log = log
        self.ready_timeout = ready_timeout
        self.proc: subprocess.Popen[bytes] | None = None

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    @property
    def pid(self) -> int:
        assert self.proc is not None
        return self.proc.pid

    def start(self) -> Self:
        out = self.log.open("ab") if self.log is not None else None
        try:
            self.proc = subprocess.Popen(self.argv, cwd=REPO, env=self.env, stdin=subprocess.DEVNULL,
                                         stdout=out, stderr=subprocess.STDOUT if out else None)
        finally:
            if out is not None:
                out.close()
        try:
            wait_http_ok(self.url + self.ready_path, timeout=self.ready_timeout, proc=self.proc)
        except RuntimeError as exc:
            self.kill()
            if self.log is None:
                raise
            tail = self.log.read_text(errors="replace")[-3000:]
            raise RuntimeError(f"{exc}\n--- {self.log.name}, its tail ---\n{tail}") from exc
        return self

    def stop(self) -> None:
        """SIGTERM (SIGKILL after 10 s), then SIGKILL whatever it started and left behind."""
        left = self._descendants()
        stop(self.proc)
        self._kill(left)
        self.proc = None

    def kill(self) -> None:
        """SIGKILL it and everything it started, as a crash would."""
        if self.proc is not None:
            self._kill([psutil.Process(self.proc.pid), *self._descendants()] if self.proc.poll() is None else self._descendants())
            self.proc.wait(timeout=10)
        self.proc = None

    def _descendants(self) -> list[psutil.Process]:
        try:
            return psutil.Process(self.pid).children(recursive=True) if self.proc is not None else []
        except psutil.NoSuchProcess:
            return []

    @staticmethod
    def _kill(procs: list[psutil.Process]) -> None:
        for proc in procs:
            with contextlib.suppress(psutil.NoSuchProcess):
                proc.send_signal(signal.SIGKILL)
        psutil.wait_procs(procs, timeout=1)

    def __enter__(self) -> Self:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()


class ChildProcess(ChildServer):
    """``python -m proxy ARGS``: an infermeter command (serve, simulate) in a child process."""

    def __init__(self, args: list[str], port: int | None = None, ready_path: str = "/healthz",
                 env: dict[str, str] | None = None, log: Path | None = None) -> None:
        super().__init__([sys.executable, "-m", "proxy", *args], port, ready_path, env, log)
