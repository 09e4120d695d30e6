"""Waiting for something that happens a moment later (a metric written as a response
ends, a socket closed, a process gone): one poll loop for the whole suite.

``poll`` returns the last value read and leaves judging it to the caller; ``eventually``
says whether a check held; ``wait_for`` and ``seconds_until`` fail the test when it did not.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import TypeVar

T = TypeVar("T")


def poll(read: Callable[[], T], ok: Callable[[T], bool], timeout: float = 10.0, step: float = 0.02) -> T:
    """Call ``read()`` until ``ok`` holds for its result or ``timeout`` passes; the last result."""
    deadline = time.monotonic() + timeout
    while True:
        result = read()
        if ok(result) or time.monotonic() > deadline:
            return result
        time.sleep(step)


def eventually(check: Callable[[], bool], timeout: float = 10.0, step: float = 0.02) -> bool:
    """Whether ``check()`` held within ``timeout``."""
    return poll(check, bool, timeout, step)


def seconds_until(check: Callable[[], bool], timeout: float, step: float = 0.002) -> float:
    """Seconds until ``check()`` held; fails the test after ``timeout``."""
    started = time.monotonic()
    assert eventually(check, timeout, step), f"did not hold within {timeout} s"
    return time.monotonic() - started


def wait_for(check: Callable[[], bool], what: str, timeout: float = 30.0, step: float = 0.1) -> None:
    """Return once ``check()`` holds; fail the test, naming ``what``, after ``timeout``."""
    if not eventually(check, timeout, step):
        raise AssertionError(f"not within {timeout} s: {what}")
