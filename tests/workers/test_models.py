"""--max-models across workers: one admission list, first come over all of them."""

from __future__ import annotations

import os
from pathlib import Path

from proxy.metrics.labels import OVERFLOW, UNKNOWN
from proxy.workers.models import SharedModelLabels


def test_the_cap_holds_across_workers(tmp_path: Path) -> None:
    path = str(tmp_path / "models")
    a, b = SharedModelLabels(2, path), SharedModelLabels(2, path)
    assert a("m1") == "m1"
    assert b("m2") == "m2"
    assert a("m3") == OVERFLOW and b("m3") == OVERFLOW
    # Each sees what the other admitted, also for answers that may not admit (non-2xx).
    assert a("m2", admit=False) == "m2" and b("m1", admit=False) == "m1"
    assert a(None) == UNKNOWN


def test_only_an_admitting_answer_takes_a_slot(tmp_path: Path) -> None:
    path = str(tmp_path / "models")
    a, b = SharedModelLabels(1, path), SharedModelLabels(1, path)
    assert a("junk", admit=False) == OVERFLOW
    assert b("real") == "real"
    assert a("junk") == OVERFLOW
    assert a("real", admit=False) == "real"


def test_names_with_newlines_and_a_torn_line(tmp_path: Path) -> None:
    path = str(tmp_path / "models")
    a = SharedModelLabels(3, path)
    assert a("two\nlines") == "two\nlines"
    # A writer caught mid-line: only whole lines count.
    fd = os.open(path, os.O_WRONLY | os.O_APPEND)
    os.write(fd, b'"half')
    b = SharedModelLabels(3, path)
    assert b("two\nlines", admit=False) == "two\nlines"
    assert b("half", admit=False) == OVERFLOW
    os.write(fd, b'"\n')
    os.close(fd)
    assert b("half", admit=False) == "half"
    a.close()
    b.close()
