"""proxy/trouble.py: every occurrence counted, one log line when a trouble begins, changes or ends."""

from __future__ import annotations

import logging
import threading

import pytest
from prometheus_client import CollectorRegistry, Counter

from proxy.trouble import Trouble
from tests.support.metrics import render

log = logging.getLogger("infermeter.test-trouble")


def _messages(caplog: pytest.LogCaptureFixture) -> list[tuple[str, str]]:
    return [(r.levelname, r.getMessage()) for r in caplog.records if r.name == log.name]


def test_counted_every_time_logged_once_per_change(caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.INFO, logger=log.name)
    registry = CollectorRegistry()
    dropped = Counter("test_dropped", "dropped", ["reason"], registry=registry)
    trouble = Trouble(log, dropped.labels("full"))
    assert not trouble.active and trouble.clear("never logged") is False
    assert trouble.hit(True, "full: dropping (%d slots)", 8) is True
    for _ in range(99):
        assert trouble.hit(True, "full: dropping (%d slots)", 8) is False
    assert trouble.hit(True, "full: dropping (%d slots)", 8, n=5) is False
    assert trouble.active
    assert trouble.clear("room again") is True and not trouble.active
    assert trouble.clear("room again") is False
    assert trouble.hit(True, "full: dropping (%d slots)", 8) is True
    assert render(registry).value("test_dropped_total", reason="full") == 99 + 1 + 5 + 1
    assert _messages(caplog) == [("WARNING", "full: dropping (8 slots)"), ("INFO", "room again"),
                                 ("WARNING", "full: dropping (8 slots)")]


def test_a_new_key_is_a_new_trouble(caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.INFO, logger=log.name)
    trouble = Trouble(log)
    for error in ("timeout", "timeout", "refused", "refused", "timeout"):
        trouble.hit(error, "failing: %s", error)
    trouble.clear()  # no message: over, silently
    trouble.clear("not logged: nothing under way")
    assert _messages(caplog) == [("WARNING", "failing: timeout"), ("WARNING", "failing: refused"),
                                 ("WARNING", "failing: timeout")]


def test_a_first_state_logged_either_way(caplog: pytest.LogCaptureFixture) -> None:
    # The probe's rule: its first answer is logged, up or down.
    caplog.set_level(logging.INFO, logger=log.name)
    up_first, down_first = Trouble(log, state="unknown"), Trouble(log, state="unknown")
    assert up_first.clear("up") is True
    assert down_first.hit("down", "down") is True
    assert _messages(caplog) == [("INFO", "up"), ("WARNING", "down")]


def test_with_the_exception(caplog: pytest.LogCaptureFixture) -> None:
    try:
        raise ValueError("bug")
    except ValueError:
        Trouble(log).hit(True, "failed unexpectedly", exc_info=True)
    (record,) = [r for r in caplog.records if r.name == log.name]
    assert record.exc_info is not None and record.exc_info[0] is ValueError


def test_threads_hitting_at_once_log_once(caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.INFO, logger=log.name)
    registry = CollectorRegistry()
    trouble = Trouble(log, Counter("test_lost", "lost", registry=registry))
    start = threading.Barrier(8)

    def hammer() -> None:
        start.wait()
        for _ in range(1000):
            trouble.hit(True, "lost")

    threads = [threading.Thread(target=hammer) for _ in range(8)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert render(registry).value("test_lost_total") == 8000
    assert _messages(caplog) == [("WARNING", "lost")]
