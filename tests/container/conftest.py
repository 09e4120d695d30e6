"""The image built once per session (podman, from the working tree), a network for containers
that talk to each other, and a section at the end of the run saying which base was used,
how big the image is and what the compose test left out."""

from __future__ import annotations

import os
from collections.abc import Iterator

import pytest

from tests.container.base import podman
from tests.container.podman import IMAGE, build_image, require, run, unavailable

REPORT: list[str] = []


@pytest.fixture(scope="session")
def image() -> str:
    require("podman")
    try:
        REPORT.extend(build_image())
    except RuntimeError as exc:  # no base: neither pulled nor built (not root, no debootstrap)
        unavailable(f"no base image for the build: {exc}")
    return IMAGE


@pytest.fixture(scope="session")
def network(image: str) -> Iterator[str]:
    """A bridge network with DNS, as compose makes: containers find each other by alias."""
    name = f"infermeter-test-{os.getpid()}"
    run("network", "create", name)
    try:
        yield name
    finally:
        podman("network", "rm", "--force", name)


def pytest_terminal_summary(terminalreporter: pytest.TerminalReporter) -> None:
    if REPORT:
        terminalreporter.section("container image")
        for line in REPORT:
            terminalreporter.write_line(line)
