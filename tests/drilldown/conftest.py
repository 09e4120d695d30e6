"""Fixtures for drill-down tests: an OTLP receiver, and a simulator that keeps the headers it got."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import ExitStack

import pytest

from proxy.simulator.app import create_app as create_simulator
from proxy.simulator.config import SimConfig
from tests.drilldown.otlp import CapturingApp, OtlpReceiver
from tests.support.servers import ThreadServer


@pytest.fixture
def receiver() -> Iterator[OtlpReceiver]:
    with OtlpReceiver() as r:
        yield r


@pytest.fixture
def tracing_env(monkeypatch: pytest.MonkeyPatch, receiver: OtlpReceiver) -> OtlpReceiver:
    """Tracing on through the standard variables, exporting quickly to ``receiver``."""
    for name in ("OTEL_TRACES_SAMPLER", "OTEL_TRACES_SAMPLER_ARG", "OTEL_SERVICE_NAME", "OTEL_RESOURCE_ATTRIBUTES",
                 "OTEL_EXPORTER_OTLP_TRACES_ENDPOINT", "OTEL_EXPORTER_OTLP_PROTOCOL", "OTEL_SDK_DISABLED"):
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setenv("OTEL_EXPORTER_OTLP_ENDPOINT", receiver.url)
    monkeypatch.setenv("OTEL_BSP_SCHEDULE_DELAY", "50")
    return receiver


@pytest.fixture
def upstream(servers: ExitStack) -> ThreadServer:
    """The simulator behind a wrapper that keeps each request's headers (``.captured``)."""
    app = CapturingApp(create_simulator(SimConfig(ttft=0.02, tbt=0.005, output_tokens=12, gc_freeze=False)))
    server = servers.enter_context(ThreadServer(app))
    server.captured = app  # type: ignore[attr-defined]
    return server
