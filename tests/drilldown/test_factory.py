"""When the drill-down turns on (``proxy/drilldown/factory.py``), and what it costs when off."""

from __future__ import annotations

import os
import subprocess
import sys

import pytest

from proxy.config import ConfigError, Settings
from proxy.drilldown.factory import tracing_wanted


@pytest.mark.parametrize("env, flag, on", [
    ({}, None, False),
    ({"OTEL_SERVICE_NAME": "x", "OTEL_TRACES_SAMPLER": "always_on"}, None, False),
    ({"OTEL_EXPORTER_OTLP_ENDPOINT": "http://c:4318"}, None, True),
    ({"OTEL_EXPORTER_OTLP_TRACES_ENDPOINT": "http://c:4318/v1/traces"}, None, True),
    ({"OTEL_TRACES_EXPORTER": "otlp"}, None, True),
    ({}, "http://c:4318", True),
    ({"OTEL_EXPORTER_OTLP_ENDPOINT": "http://c:4318", "OTEL_SDK_DISABLED": "true"}, None, False),
    ({"OTEL_TRACES_EXPORTER": "none"}, "http://c:4318", False),
])
def test_tracing_wanted(env: dict[str, str], flag: str | None, on: bool) -> None:
    assert tracing_wanted(Settings(otlp_endpoint=flag), env) is on


def test_unsupported_exporter_and_bad_flags_are_refused() -> None:
    with pytest.raises(ConfigError, match="OTEL_TRACES_EXPORTER"):
        tracing_wanted(Settings(), {"OTEL_TRACES_EXPORTER": "zipkin"})
    with pytest.raises(ConfigError, match="--otlp-endpoint"):
        Settings(otlp_endpoint="collector:4318")
    with pytest.raises(ConfigError, match="--request-log"):
        Settings(request_log=" ")
    with pytest.raises(ConfigError, match="--request-log-queue"):
        Settings(request_log_queue=0)


def test_no_sdk_import_when_tracing_is_off() -> None:
    # The SDK and exporters only: FastAPI itself imports the OpenTelemetry API when installed.
    env = {k: v for k, v in os.environ.items() if not k.startswith(("OTEL_", "INFERMETER_"))}
    code = ("import sys; from proxy.app import create_app; from proxy.config import Settings; "
            "create_app(Settings(collectors=())); "
            "print(sorted(m for m in sys.modules if m.startswith(('opentelemetry.sdk', 'opentelemetry.exporter'))))")
    out = subprocess.run([sys.executable, "-c", code], env=env, capture_output=True, text=True, check=True, timeout=60)
    assert out.stdout.strip() == "[]", out.stdout
