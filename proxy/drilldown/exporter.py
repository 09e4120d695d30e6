"""The OTLP side of tracing: which exporter the environment asks for, and the resource.

Imported only when tracing is on (``factory.py``), like the SDK itself.
"""

from __future__ import annotations

from collections.abc import Mapping
from urllib.parse import urlsplit

from opentelemetry.sdk.resources import SERVICE_NAME, SERVICE_VERSION, Resource
from opentelemetry.sdk.trace.export import SpanExporter

from proxy import __version__
from proxy.config import ConfigError, Settings

PROTOCOLS = ("http/protobuf", "grpc")


def protocol(env: Mapping[str, str]) -> str:
    value = (env.get("OTEL_EXPORTER_OTLP_TRACES_PROTOCOL") or env.get("OTEL_EXPORTER_OTLP_PROTOCOL") or "http/protobuf")
    value = value.strip().lower()
    if value not in PROTOCOLS:
        raise ConfigError(f"OTEL_EXPORTER_OTLP_PROTOCOL={value!r} is not supported; use one of {', '.join(PROTOCOLS)}")
    return value


def otlp_exporter(settings: Settings, env: Mapping[str, str]) -> tuple[SpanExporter, str]:
    """The OTLP exporter the environment asks for, and where it sends (for log lines)."""
    proto = protocol(env)
    base = settings.otlp_endpoint
    if proto == "grpc":
        try:
            from opentelemetry.exporter.otlp.proto.grpc.trace_exporter import OTLPSpanExporter as GrpcExporter
        except ImportError:
            raise ConfigError("OTLP over gRPC needs opentelemetry-exporter-otlp-proto-grpc: "
                              "pip install 'infermeter[otel]'") from None
        target = base or env.get("OTEL_EXPORTER_OTLP_TRACES_ENDPOINT") or env.get("OTEL_EXPORTER_OTLP_ENDPOINT") \
            or "http://localhost:4317"
        return GrpcExporter(endpoint=base) if base else GrpcExporter(), describe(target)
    try:
        from opentelemetry.exporter.otlp.proto.http.trace_exporter import OTLPSpanExporter as HttpExporter
    except ImportError:
        raise ConfigError("tracing needs opentelemetry-sdk and opentelemetry-exporter-otlp-proto-http: "
                          "pip install 'infermeter[otel]'") from None
    if base:
        endpoint = base.rstrip("/") + "/v1/traces"
        return HttpExporter(endpoint=endpoint), describe(endpoint)
    target = env.get("OTEL_EXPORTER_OTLP_TRACES_ENDPOINT") or (
        (env.get("OTEL_EXPORTER_OTLP_ENDPOINT") or "http://localhost:4318").rstrip("/") + "/v1/traces")
    return HttpExporter(), describe(target)


def describe(url: str) -> str:
    """The collector as log lines name it: without any credentials or query a URL may carry."""
    parts = urlsplit(url)
    host = parts.hostname or url
    return f"{parts.scheme}://{host}{':' + str(parts.port) if parts.port else ''}{parts.path}" if parts.scheme else host


def resource() -> Resource:
    """OTEL_SERVICE_NAME and OTEL_RESOURCE_ATTRIBUTES win; else service.name is infermeter."""
    detected = Resource({SERVICE_VERSION: __version__}).merge(Resource.create())
    if str(detected.attributes.get(SERVICE_NAME, "")).startswith("unknown_service"):
        detected = detected.merge(Resource({SERVICE_NAME: "infermeter"}))
    return detected


def env_int(env: Mapping[str, str], name: str, default: int) -> int:
    raw = env.get(name, "").strip()
    try:
        value = int(raw) if raw else default
    except ValueError:
        raise ConfigError(f"{name} must be a whole number, got {raw!r}") from None
    if value < 1:
        raise ConfigError(f"{name} must be at least 1")
    return value
