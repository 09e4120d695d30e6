"""``load`` and ``demo`` stop on SIGTERM as on Ctrl-C: at once, exit 0, nothing left behind.
(As a container's PID 1 too: tests/container/test_image.py stops them with podman.)"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from collections.abc import Callable

import psutil
import pytest

from tests.support.servers import REPO, ThreadServer
from tests.support.wait import wait_for


def _start(*args: str) -> subprocess.Popen[str]:
    return subprocess.Popen([sys.executable, "-m", "proxy", *args], stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
                            text=True, env={**os.environ, "PYTHONPATH": str(REPO)})


def _terminate(proc: subprocess.Popen[str]) -> tuple[int, float, str]:
    started = time.monotonic()
    proc.send_signal(signal.SIGTERM)
    try:
        output, _ = proc.communicate(timeout=10)
    except subprocess.TimeoutExpired:
        proc.kill()
        output, _ = proc.communicate(timeout=10)
    return proc.returncode, time.monotonic() - started, output


@pytest.fixture
def sim(start_simulator: Callable[..., ThreadServer]) -> ThreadServer:
    return start_simulator(ttft=0.05, tbt=0.02, output_tokens=200)


def test_load_stops_on_sigterm_with_its_streams_open(sim: ThreadServer) -> None:
    with _start("load", "--target", sim.url, "--concurrency", "4") as proc:
        assert proc.stdout is not None
        assert "streams against" in proc.stdout.readline()
        # 200 tokens at 20 ms: each stream is open for 4 s, so SIGTERM lands mid-stream.
        time.sleep(1.0)
        code, took, output = _terminate(proc)
    assert code == 0, output
    assert took < 2.0, f"load took {took:.2f} s to stop"


def test_demo_stops_on_sigterm_and_takes_its_simulator_along() -> None:
    with _start("demo", "--port", "0", "--interval", "0.5") as proc:
        demo = psutil.Process(proc.pid)
        children: list[psutil.Process] = []
        try:
            wait_for(lambda: len(demo.children()) == 1, "the demo started its simulator")
            children = demo.children()
            assert proc.stdout is not None
            assert proc.stdout.readline().startswith("infermeter demo:")  # its proxy is up
            code, took, output = _terminate(proc)
            outlived = [child for child in children if child.is_running()]
        finally:
            # Whatever a failure left running (before the fix: the simulator, orphaned).
            for leftover in [*children, demo]:
                if leftover.is_running():
                    leftover.kill()
    assert code == 0, output
    assert took < 2.0, f"demo took {took:.2f} s to stop"
    assert not outlived, "the demo's simulator outlived it"
