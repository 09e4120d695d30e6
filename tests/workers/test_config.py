"""--workers / INFERMETER_WORKERS: a count or auto, checked at start."""

from __future__ import annotations

import os

import pytest

from proxy.cli import SERVE_FLAGS, _collect, build_parser, main
from proxy.config import Settings


def _settings(*argv: str) -> Settings:
    args = build_parser().parse_args(["serve", *argv])
    return Settings(**_collect(args, SERVE_FLAGS, "INFERMETER_"))


def test_default_is_one_process() -> None:
    assert _settings().workers == 1


def test_auto_is_one_per_core_this_process_may_use(monkeypatch: pytest.MonkeyPatch) -> None:
    assert _settings("--workers", "auto").workers == len(os.sched_getaffinity(0))
    monkeypatch.setenv("INFERMETER_WORKERS", "3")
    assert _settings().workers == 3
    assert _settings("--workers", "2").workers == 2


@pytest.mark.parametrize("value", ["0", "-1", "many", "257"])
def test_bad_counts_stop_at_start_naming_the_flag(value: str, capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["serve", "--workers", value]) == 2
    assert "--workers" in capsys.readouterr().err
