"""Build the drill-down a sidecar's settings and environment ask for.

Tracing is on when an OTLP endpoint is named (``--otlp-endpoint``,
``OTEL_EXPORTER_OTLP_ENDPOINT`` or ``OTEL_EXPORTER_OTLP_TRACES_ENDPOINT``) or
``OTEL_TRACES_EXPORTER=otlp`` is set, unless ``OTEL_SDK_DISABLED=true`` or
``OTEL_TRACES_EXPORTER=none``. Only then is the OpenTelemetry SDK imported.
"""

from __future__ import annotations

import os
from collections.abc import Mapping

from prometheus_client import CollectorRegistry

from proxy.config import ConfigError, Settings
from proxy.drilldown.hub import Drilldown
from proxy.metrics.definitions import RequestLogMetrics, SpanMetrics


def tracing_wanted(settings: Settings, env: Mapping[str, str]) -> bool:
    if env.get("OTEL_SDK_DISABLED", "").strip().lower() == "true":
        return False
    exporter = env.get("OTEL_TRACES_EXPORTER", "").strip().lower()
    if exporter == "none":
        return False
    if exporter not in ("", "otlp"):
        raise ConfigError(f"OTEL_TRACES_EXPORTER={exporter!r} is not supported; use otlp or none")
    return bool(settings.otlp_endpoint or env.get("OTEL_EXPORTER_OTLP_ENDPOINT")
                or env.get("OTEL_EXPORTER_OTLP_TRACES_ENDPOINT") or exporter == "otlp")


def build_drilldown(settings: Settings, registry: CollectorRegistry, env: Mapping[str, str] | None = None) -> Drilldown:
    env = os.environ if env is None else env
    tracing = None
    if tracing_wanted(settings, env):
        from proxy.drilldown.tracing import Tracing

        tracing = Tracing(settings, SpanMetrics(registry), env)
    request_log = None
    if settings.request_log is not None:
        from proxy.drilldown.requestlog import RequestLog

        request_log = RequestLog(settings.request_log, RequestLogMetrics(registry), settings.request_log_queue)
    return Drilldown(tracing, request_log)
