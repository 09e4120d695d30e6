"""Child processes that serve HTTP: wait until one answers, stop it without leaving it behind.

The demo starts the simulator this way; the tests and the benchmark start servers the same way.
"""

from __future__ import annotations

import contextlib
import subprocess
import time
from typing import Any

import httpx


def wait_http_ok(url: str, timeout: float = 20.0, proc: subprocess.Popen[Any] | None = None) -> None:
    """Return once ``url`` answers 200; raise if ``proc`` exits first or ``timeout`` passes."""
    deadline = time.monotonic() + timeout
    while True:
        if proc is not None and proc.poll() is not None:
            raise RuntimeError(f"{proc.args!r} exited with {proc.returncode} before {url} answered")
        with contextlib.suppress(httpx.HTTPError):
            if httpx.get(url, timeout=1.0).status_code == 200:
                return
        if time.monotonic() > deadline:
            raise RuntimeError(f"{url} did not answer 200 within {timeout} s")
        time.sleep(0.05)


def stop(proc: subprocess.Popen[Any] | None, timeout: float = 10.0) -> None:
    """SIGTERM, then SIGKILL if it has not exited within ``timeout``."""
    if proc is None or proc.poll() is not None:
        return
    proc.terminate()
    try:
        proc.wait(timeout=timeout)
    except subprocess.TimeoutExpired:
        proc.kill()
        proc.wait(timeout=5)
