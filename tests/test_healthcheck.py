"""``python -m proxy.healthcheck`` against real infermeter processes on this host (the
container tests run it as the image's HEALTHCHECK): it asks each command where that
process listens, however the port was given, and says unhealthy when nothing answers."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path

import pytest

from proxy.healthcheck import check, command_args
from tests.support.servers import REPO, ChildProcess, ChildServer, free_port

DEAD = "http://127.0.0.1:9"


def _healthcheck(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "proxy.healthcheck", *args], capture_output=True, text=True,
                          timeout=30, env={**os.environ, "PYTHONPATH": str(REPO)}, check=False)


def _serve(*args: str, env: dict[str, str] | None = None, port: int | None = None, ready: str = "/healthz") -> ChildProcess:
    return ChildProcess(["serve", "--upstream", DEAD, "--collectors", "none", "--log-level", "warning", *args],
                        port=port, env=env, ready_path=ready)


@pytest.mark.parametrize(("make", "asked"), [
    (lambda port: _serve("--port", str(port), port=port), "http://127.0.0.1:{port}/healthz"),
    (lambda port: _serve(env={"INFERMETER_PORT": str(port)}, port=port), "http://127.0.0.1:{port}/healthz"),
    (lambda port: _serve("--port", str(port), "--admin-prefix", "/im", port=port, ready="/im/healthz"),
     "http://127.0.0.1:{port}/im/healthz"),
    (lambda port: ChildProcess(["simulate", "--port", str(port), "--log-level", "warning"], port=port,
                               ready_path="/health"), "http://127.0.0.1:{port}/health"),
    (lambda port: ChildProcess(["simulate", "--log-level", "warning"], port=port, ready_path="/health",
                               env={"INFERMETER_SIM_PORT": str(port)}), "http://127.0.0.1:{port}/health"),
], ids=["serve-port-flag", "serve-port-variable", "serve-admin-prefix", "simulate-port-flag", "simulate-port-variable"])
def test_asks_where_the_process_listens(make: Callable[[int], ChildServer], asked: str) -> None:
    port = free_port()
    with make(port) as server:
        result = _healthcheck("--pid", str(server.pid))
        assert result.returncode == 0, result.stdout + result.stderr
        assert result.stdout.strip() == f"healthy: GET {asked.format(port=port)} answered 200"


def test_load_is_healthy_while_it_runs() -> None:
    proc = subprocess.Popen([sys.executable, "-m", "proxy", "load", "--target", DEAD], stdout=subprocess.DEVNULL,
                            env={**os.environ, "PYTHONPATH": str(REPO)})
    try:
        result = _healthcheck("--pid", str(proc.pid))
        assert result.returncode == 0 and "infermeter load" in result.stdout, result.stdout
    finally:
        proc.kill()
        proc.wait(timeout=10)
    assert _healthcheck("--pid", str(proc.pid)).returncode == 1


def test_not_infermeter_is_unhealthy() -> None:
    result = _healthcheck("--pid", str(os.getpid()))  # pytest
    assert result.returncode == 1 and result.stdout.startswith("unhealthy: no infermeter process"), result.stdout


def test_a_hung_server_is_unhealthy_within_the_timeout() -> None:
    with _serve("--port", "{port}") as server:
        os.kill(server.pid, signal.SIGSTOP)
        try:
            started = time.monotonic()
            result = _healthcheck("--pid", str(server.pid), "--timeout", "1")
            took = time.monotonic() - started
        finally:
            os.kill(server.pid, signal.SIGCONT)
    assert result.returncode == 1 and "timed out" in result.stdout, result.stdout
    assert took < 10, took  # 1 s for the answer, the rest is Python starting on a loaded machine


def _fake_proc(root: Path, pid: int, argv: list[str], environ: dict[str, str]) -> None:
    entry = root / str(pid)
    entry.mkdir()
    (entry / "cmdline").write_bytes(b"".join(arg.encode() + b"\0" for arg in argv))
    (entry / "environ").write_bytes(b"".join(f"{k}={v}".encode() + b"\0" for k, v in environ.items()))
    (entry / "stat").write_text(f"{pid} ({Path(argv[0]).name}) S 0 0 0")


def test_behind_an_init_the_lowest_infermeter_pid_is_asked(tmp_path: Path) -> None:
    """``docker run --init``: PID 1 is the init; infermeter runs under it. The /proc tree is
    a fake (prometheus_client's process collector is tested so); the server is real."""
    with ChildServer([sys.executable, "-m", "proxy", "simulate", "--port", "{port}"], ready_path="/health") as sim:
        _fake_proc(tmp_path, 1, ["/sbin/docker-init", "--", "infermeter", "simulate"], {})
        _fake_proc(tmp_path, 7, ["/opt/venv/bin/python", "/opt/venv/bin/infermeter", "simulate"],
                   {"INFERMETER_SIM_PORT": str(sim.port)})
        _fake_proc(tmp_path, 9, ["/opt/venv/bin/python", "/opt/venv/bin/infermeter", "serve", "--port", str(free_port())], {})
        healthy, line = check(proc=tmp_path)
    assert healthy, line
    assert line == f"healthy: GET http://127.0.0.1:{sim.port}/health answered 200"


@pytest.mark.parametrize(("argv", "args"), [
    (["/opt/venv/bin/infermeter", "serve", "--port", "1"], ["serve", "--port", "1"]),
    (["/opt/venv/bin/python", "/opt/venv/bin/infermeter", "load"], ["load"]),
    (["python", "-m", "proxy", "simulate"], ["simulate"]),
    (["python", "-m", "proxy.healthcheck"], None),
    (["/sbin/docker-init", "--", "infermeter", "serve"], None),
    (["sh"], None),
])
def test_which_command_lines_run_infermeter(argv: list[str], args: list[str] | None) -> None:
    assert command_args(argv) == args
