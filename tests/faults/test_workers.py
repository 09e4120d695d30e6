"""``--workers`` is not built yet (one process holds the benchmarked load): it must say so."""

from __future__ import annotations

import pytest

from proxy.cli import main


def test_more_than_one_worker_is_refused_not_ignored(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["serve", "--upstream", "http://127.0.0.1:9", "--port", "0", "--workers", "2"]) == 2
    assert "--workers 2" in capsys.readouterr().err
