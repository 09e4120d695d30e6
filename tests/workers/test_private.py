"""The supervisor's private directory: locked while its supervisor lives, swept once it is gone."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

from proxy.workers.private import PREFIX, PrivateDir, sweep


def test_a_live_directory_is_kept_and_removed_at_close(tmp_path: Path) -> None:
    private = PrivateDir(str(tmp_path))
    assert os.path.basename(private.path).startswith(f"{PREFIX}{os.getpid()}-")
    assert os.stat(private.path).st_mode & 0o777 == 0o700
    assert sweep(str(tmp_path)) == [] and os.path.isdir(private.path)
    private.close()
    assert list(tmp_path.iterdir()) == []


def _left_by_a_killed_supervisor(parent: Path) -> str:
    """A directory whose supervisor exited without removing it: its lock went with it."""
    code = f"from proxy.workers.private import PrivateDir; print(PrivateDir({str(parent)!r}).path)"
    dead = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout.strip()
    Path(dead, "models").write_text('"m"\n')
    return dead


def test_only_directories_of_dead_supervisors_are_swept(tmp_path: Path) -> None:
    live = PrivateDir(str(tmp_path))
    dead = _left_by_a_killed_supervisor(tmp_path)
    others = [tmp_path / "infermeter-notours", tmp_path / f"{PREFIX}12-file"]
    others[0].mkdir()
    others[1].write_text("not a directory")
    try:
        assert sweep(str(tmp_path)) == [dead]
        assert sorted(tmp_path.iterdir()) == sorted([Path(live.path), *others])
    finally:
        live.close()


def test_a_new_directory_sweeps_first(tmp_path: Path) -> None:
    dead = _left_by_a_killed_supervisor(tmp_path)
    live = PrivateDir(str(tmp_path))
    try:
        assert list(tmp_path.iterdir()) == [Path(live.path)] and live.path != dead
    finally:
        live.close()
