"""podman for the container tests: the image built from the working tree, containers that
publish on 127.0.0.1 only and are removed when the test ends, and a timed stop.

Without podman the tests skip, saying why; where CI asks for them
(``INFERMETER_REQUIRE_PODMAN=1``, or ``CI`` set) they fail instead, so a broken setup
cannot pass as a skip.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import time
import uuid
from typing import TYPE_CHECKING

import httpx
import pytest

from tests.container.base import ensure_base, podman
from tests.support.servers import REPO, free_port
from tests.support.wait import eventually

if TYPE_CHECKING:
    from typing_extensions import Self

IMAGE = "localhost/infermeter:test"
SETUP = ".ci/run installs and configures it (apt-get install podman buildah runc fuse-overlayfs slirp4netns " \
        "uidmap golang-github-containernetworking-plugin-dnsname; /etc/containers/containers.conf)"


def unavailable(reason: str) -> None:
    """Skip for a developer without podman; fail where CI requires the container tests."""
    if os.environ.get("INFERMETER_REQUIRE_PODMAN") or os.environ.get("CI"):
        pytest.fail(reason)
    pytest.skip(reason)


def require(binary: str = "podman") -> None:
    if shutil.which(binary) is None:
        unavailable(f"{binary} not installed: the image and compose tests need it; {SETUP}")


def build_image() -> list[str]:
    """Build the Dockerfile from the working tree as ``IMAGE``; lines that say how it went."""
    lines = [ensure_base()]
    started = time.monotonic()
    # --format docker: the OCI format has no HEALTHCHECK, and podman drops it silently.
    built = podman("build", "--format", "docker", "--tag", IMAGE, str(REPO), timeout=1200)
    assert built.returncode == 0, built.stdout[-3000:] + built.stderr[-3000:]
    lines.append(f"image {IMAGE} built in {time.monotonic() - started:.0f} s (podman build --format docker)")
    return lines


def inspect(*names: str, kind: str = "container") -> list[dict[str, object]]:
    result = podman(kind, "inspect", *names)
    assert result.returncode == 0, result.stderr
    parsed: list[dict[str, object]] = json.loads(result.stdout)
    return parsed


def run(*args: str, timeout: float = 120) -> subprocess.CompletedProcess[str]:
    """``podman ARGS`` that must succeed."""
    result = podman(*args, timeout=timeout)
    assert result.returncode == 0, f"podman {' '.join(args)}: {result.stdout}{result.stderr}"
    return result


class Container:
    """``podman run -d IMAGE ARGS``, its ``port`` published on 127.0.0.1 at a free port."""

    def __init__(self, args: list[str], port: int | None = None, env: dict[str, str] | None = None,
                 network: str | None = None, alias: str | None = None) -> None:
        self.name = f"infermeter-test-{uuid.uuid4().hex[:10]}"
        self.host_port = free_port() if port else 0
        options = ["--name", self.name]
        if port:
            options += ["--publish", f"127.0.0.1:{self.host_port}:{port}"]
        for key, value in (env or {}).items():
            options += ["--env", f"{key}={value}"]
        if network:
            options += ["--network", network, *(["--network-alias", alias] if alias else [])]
        self.argv = ["run", "--detach", *options, IMAGE, *args]

    def __enter__(self) -> Self:
        run(*self.argv)
        return self

    def __exit__(self, *exc: object) -> None:
        podman("rm", "--force", "--time", "0", self.name)

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.host_port}"

    def wait_answers(self, path: str, timeout: float = 60) -> None:
        def answers() -> bool:
            try:
                return httpx.get(self.url + path, timeout=2).status_code == 200
            except httpx.HTTPError:
                return False

        assert eventually(answers, timeout, step=0.2), f"{self.url}{path} did not answer 200:\n{self.logs()}"

    def exec(self, *command: str) -> str:
        return run("exec", self.name, *command).stdout

    def healthcheck(self) -> subprocess.CompletedProcess[str]:
        return podman("healthcheck", "run", self.name, timeout=60)

    def state(self) -> dict[str, object]:
        state = inspect(self.name)[0]["State"]
        assert isinstance(state, dict)
        return state

    def stop(self, grace: int = 10) -> tuple[float, int]:
        """``podman stop``: seconds it took and the exit code; podman kills after ``grace`` s."""
        started = time.monotonic()
        run("stop", "--time", str(grace), self.name, timeout=grace + 60)
        took = time.monotonic() - started
        code = self.state()["ExitCode"]
        assert isinstance(code, int)
        return took, code

    def logs(self) -> str:
        result = podman("logs", self.name)
        return (result.stdout + result.stderr)[-3000:]
