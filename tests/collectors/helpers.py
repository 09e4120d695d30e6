"""Reading metrics back the way Prometheus does, and a real upstream in a child process."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from collections.abc import Callable, Iterable
from pathlib import Path

import psutil
from prometheus_client import CollectorRegistry, generate_latest
from prometheus_client.metrics_core import Metric
from prometheus_client.parser import text_string_to_metric_families

from proxy.children import wait_http_ok
from tests.support.servers import free_port

REPO = Path(__file__).resolve().parents[2]

Series = dict[tuple[str, tuple[tuple[str, str], ...]], float]


def series(families: Iterable[Metric]) -> Series:
    """Every sample as ``{(name, sorted labels): value}``."""
    out: Series = {}
    for family in families:
        for sample in family.samples:
            out[(sample.name, tuple(sorted(sample.labels.items())))] = sample.value
    return out


def scrape(registry: CollectorRegistry) -> Series:
    """Render the text exposition and parse it back, so the output format is checked too."""
    return series(text_string_to_metric_families(generate_latest(registry).decode()))


def value(data: Series, metric: str, /, **labels: str) -> float | None:
    return data.get((metric, tuple(sorted(labels.items()))))


def names(data: Series) -> set[str]:
    return {name for name, _ in data}


def wait_for(predicate: Callable[[], bool], timeout: float = 10.0, step: float = 0.02) -> bool:
    deadline = time.monotonic() + timeout
    while not predicate():
        if time.monotonic() > deadline:
            return False
        time.sleep(step)
    return True


class Upstream:
    """A real upstream server in a child process; ``kill()`` it and ``start()`` it again.

    The simulator (``python -m proxy simulate``) when ``simulator`` is set, else the small
    server in ``upstream_server.py`` (which can also start child processes).
    """

    def __init__(self, port: int | None = None, simulator: bool = False, args: tuple[str, ...] = ()) -> None:
        self.port = port or free_port()
        self.simulator = simulator
        self.args = args
        self.proc: subprocess.Popen[bytes] | None = None
        self._tree: list[psutil.Process] = []

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    @property
    def pid(self) -> int:
        assert self.proc is not None
        return self.proc.pid

    def start(self, ready_path: str = "/health") -> Upstream:
        if self.simulator:
            argv = ["-m", "proxy", "simulate", "--port", str(self.port), "--log-level", "warning", *self.args]
        else:
            argv = ["-m", "tests.collectors.upstream_server", str(self.port), *self.args]
        env = {**os.environ, "PYTHONPATH": str(REPO)}
        self.proc = subprocess.Popen([sys.executable, *argv], cwd=REPO, env=env)
        wait_http_ok(self.url + ready_path, proc=self.proc)
        return self

    def kill(self) -> None:
        """SIGKILL the server and everything it started, as a crash would."""
        if self.proc is None:
            return
        try:
            tree = [psutil.Process(self.proc.pid), *psutil.Process(self.proc.pid).children(recursive=True)]
        except psutil.NoSuchProcess:
            tree = []
        for proc in tree:
            try:
                proc.send_signal(signal.SIGKILL)
            except psutil.NoSuchProcess:
                pass
        self.proc.wait(timeout=10)
        psutil.wait_procs(tree[1:], timeout=1)
        self.proc = None

    def __enter__(self) -> Upstream:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.kill()
