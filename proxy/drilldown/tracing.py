"""One OpenTelemetry span per relayed request, exported over OTLP by the official SDK.

Imported only when tracing is on (``setup.py``). The span follows the OpenTelemetry GenAI
semantic conventions as of semantic-conventions v1.41.0 (development status; docs/drilldown.md
lists every attribute). Its start is the request's arrival and its end the last byte to the
client, both wall-clock times derived from the record's one ``time.time_ns()`` and its
monotonic stamps, so span duration and the metrics' duration are the same number.

The SDK's ``BatchSpanProcessor`` exports from its own thread. In front of it, ``SpanPipe``
keeps the queue bounded itself and counts every span that does not make it (a full queue,
a failed export), so a dead or slow collector costs the relay one deque append per request
and shows up in ``infermeter_spans_dropped_total``, with one log line per state change.
"""

from __future__ import annotations

import logging
import os
import threading
from collections.abc import Mapping, Sequence
from urllib.parse import urlsplit

from opentelemetry.context import Context
from opentelemetry.sdk.resources import SERVICE_NAME, SERVICE_VERSION, Resource
from opentelemetry.sdk.trace import ReadableSpan, TracerProvider
from opentelemetry.sdk.trace import Span as SdkSpan
from opentelemetry.sdk.trace.export import BatchSpanProcessor, SpanExporter, SpanExportResult
from opentelemetry.trace import SpanKind, Status, StatusCode
from opentelemetry.trace.propagation.tracecontext import TraceContextTextMapPropagator
from opentelemetry.util.types import AttributeValue

from proxy import __version__
from proxy.config import ConfigError, Settings
from proxy.metrics.definitions import SpanMetrics
from proxy.stream import endpoints as ep
from proxy.timing import CANCELLED, COMPLETED, REJECTED, UPSTREAM_ERROR, RequestRecord

log = logging.getLogger("infermeter.tracing")

# gen_ai.operation.name and gen_ai.provider.name by endpoint. The provider is the wire
# format the proxy read (a vLLM speaking OpenAI's API reports as "openai", as the
# convention's note on gen_ai.provider.name allows); server.address names the real one.
_OPERATION = {
    ep.CHAT_COMPLETIONS: "chat", ep.RESPONSES: "chat", ep.MESSAGES: "chat", ep.OLLAMA_CHAT: "chat",
    ep.COMPLETIONS: "text_completion", ep.OLLAMA_GENERATE: "text_completion", ep.TGI_GENERATE: "text_completion",
    ep.LLAMACPP_COMPLETION: "text_completion", ep.EMBEDDINGS: "embeddings",
}
_PROVIDER = {
    ep.CHAT_COMPLETIONS: "openai", ep.COMPLETIONS: "openai", ep.RESPONSES: "openai", ep.EMBEDDINGS: "openai",
    ep.MESSAGES: "anthropic", ep.OLLAMA_CHAT: "ollama", ep.OLLAMA_GENERATE: "ollama", ep.TGI_GENERATE: "tgi",
    ep.LLAMACPP_COMPLETION: "llama.cpp",
}
_ROOT = Context()
_PROTOCOLS = ("http/protobuf", "grpc")


def protocol(env: Mapping[str, str]) -> str:
    value = (env.get("OTEL_EXPORTER_OTLP_TRACES_PROTOCOL") or env.get("OTEL_EXPORTER_OTLP_PROTOCOL") or "http/protobuf")
    value = value.strip().lower()
    if value not in _PROTOCOLS:
        raise ConfigError(f"OTEL_EXPORTER_OTLP_PROTOCOL={value!r} is not supported; use one of {', '.join(_PROTOCOLS)}")
    return value


def _exporter(settings: Settings, env: Mapping[str, str]) -> tuple[SpanExporter, str]:
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
        return GrpcExporter(endpoint=base) if base else GrpcExporter(), _describe(target)
    try:
        from opentelemetry.exporter.otlp.proto.http.trace_exporter import OTLPSpanExporter as HttpExporter
    except ImportError:
        raise ConfigError("tracing needs opentelemetry-sdk and opentelemetry-exporter-otlp-proto-http: "
                          "pip install 'infermeter[otel]'") from None
    if base:
        endpoint = base.rstrip("/") + "/v1/traces"
        return HttpExporter(endpoint=endpoint), _describe(endpoint)
    target = env.get("OTEL_EXPORTER_OTLP_TRACES_ENDPOINT") or (
        (env.get("OTEL_EXPORTER_OTLP_ENDPOINT") or "http://localhost:4318").rstrip("/") + "/v1/traces")
    return HttpExporter(), _describe(target)


def _describe(url: str) -> str:
    # Log lines name the collector without any credentials or query a URL may carry.
    parts = urlsplit(url)
    host = parts.hostname or url
    return f"{parts.scheme}://{host}{':' + str(parts.port) if parts.port else ''}{parts.path}" if parts.scheme else host


def _resource() -> Resource:
    """OTEL_SERVICE_NAME and OTEL_RESOURCE_ATTRIBUTES win; else service.name is infermeter."""
    detected = Resource({SERVICE_VERSION: __version__}).merge(Resource.create())
    if str(detected.attributes.get(SERVICE_NAME, "")).startswith("unknown_service"):
        detected = detected.merge(Resource({SERVICE_NAME: "infermeter"}))
    return detected


class SpanPipe(SpanExporter):
    """Wraps the OTLP exporter: bounds the processor's queue and counts every span's fate."""

    def __init__(self, exporter: SpanExporter, limit: int, metrics: SpanMetrics, target: str) -> None:
        self.exporter = exporter
        self.limit = limit
        self.target = target
        self.exported = metrics.exported
        self.queue_full = metrics.dropped.labels("queue_full")
        self.export_failed = metrics.dropped.labels("export_failed")
        self._lock = threading.Lock()
        self._pending = 0
        self._full = False
        self._failing = False

    def admit(self) -> bool:
        """A span ended: may it join the queue? Counted as dropped when not."""
        with self._lock:
            if self._pending >= self.limit:
                self.queue_full.inc()
                if not self._full:
                    self._full = True
                    log.warning("span queue full (%d spans; collector %s slow or down): dropping spans, "
                                "counted in infermeter_spans_dropped_total", self.limit, self.target)
                return False
            self._pending += 1
            if self._full:
                self._full = False
                log.info("span queue has room again")
            return True

    def export(self, spans: Sequence[ReadableSpan]) -> SpanExportResult:
        n = len(spans)
        with self._lock:
            self._pending -= n
        try:
            result = self.exporter.export(spans)
        except Exception:  # the SDK's exporters return FAILURE; anything else is counted alike
            result = SpanExportResult.FAILURE
        if result is SpanExportResult.SUCCESS:
            self.exported.inc(n)
            if self._failing:
                self._failing = False
                log.info("span export to %s works again", self.target)
        else:
            self.export_failed.inc(n)
            if not self._failing:
                self._failing = True
                log.warning("span export to %s failed: dropping spans, counted in infermeter_spans_dropped_total",
                            self.target)
        return result

    def shutdown(self) -> None:
        self.exporter.shutdown()

    def force_flush(self, timeout_millis: int = 30000) -> bool:
        return self.exporter.force_flush(timeout_millis)


class _BoundedProcessor(BatchSpanProcessor):
    def __init__(self, pipe: SpanPipe, batch: int) -> None:
        # One slot more than the pipe admits: the SDK's own queue never overflows (it
        # would drop the oldest span uncounted).
        super().__init__(pipe, max_queue_size=pipe.limit + 1, max_export_batch_size=min(batch, pipe.limit))
        self.pipe = pipe

    def on_end(self, span: ReadableSpan) -> None:
        if span.context is not None and span.context.trace_flags.sampled and self.pipe.admit():
            super().on_end(span)


def _env_int(env: Mapping[str, str], name: str, default: int) -> int:
    raw = env.get(name, "").strip()
    try:
        value = int(raw) if raw else default
    except ValueError:
        raise ConfigError(f"{name} must be a whole number, got {raw!r}") from None
    if value < 1:
        raise ConfigError(f"{name} must be at least 1")
    return value


class Tracing:
    def __init__(self, settings: Settings, metrics: SpanMetrics, env: Mapping[str, str] | None = None) -> None:
        env = os.environ if env is None else env
        exporter, target = _exporter(settings, env)
        self.target = target
        self.pipe = SpanPipe(exporter, _env_int(env, "OTEL_BSP_MAX_QUEUE_SIZE", 2048), metrics, target)
        # The sampler comes from OTEL_TRACES_SAMPLER / _ARG (default: parentbased_always_on).
        self.provider = TracerProvider(resource=_resource())
        self.provider.add_span_processor(_BoundedProcessor(self.pipe, _env_int(env, "OTEL_BSP_MAX_EXPORT_BATCH_SIZE", 512)))
        self.tracer = self.provider.get_tracer("infermeter", __version__)
        self.propagator = TraceContextTextMapPropagator()
        self.server_address = settings.upstream_url.host
        self.server_port = settings.upstream_url.port
        # The SDK's exporters log every failed batch; SpanPipe logs state changes instead.
        logging.getLogger("opentelemetry.exporter.otlp").setLevel(logging.CRITICAL)
        log.info("tracing: one span per request to %s (%s)", target, protocol(env))

    def start(self, rec: RequestRecord, parent: bytes | None, state: bytes | None) -> None:
        context = _ROOT
        if parent is not None:
            carrier = {"traceparent": parent.decode("latin-1")}
            if state is not None:
                carrier["tracestate"] = state.decode("latin-1")
            context = self.propagator.extract(carrier, context=_ROOT)
        span = self.tracer.start_span(_OPERATION.get(rec.endpoint, rec.method), context=context, kind=SpanKind.CLIENT,
                                      start_time=rec.t_wall, record_exception=False, set_status_on_exception=False)
        rec.span = span
        sc = span.get_span_context()
        if sc.trace_flags.sampled:
            rec.trace_id = format(sc.trace_id, "032x")
            rec.span_id = format(sc.span_id, "016x")

    def headers(self, rec: RequestRecord) -> list[tuple[bytes, bytes]]:
        """``traceparent`` (and the client's ``tracestate``) naming this request's span as the parent."""
        sc = rec.span.get_span_context()
        out = [(b"traceparent", b"00-%032x-%016x-%02x" % (sc.trace_id, sc.span_id, sc.trace_flags))]
        if sc.trace_state:
            out.append((b"tracestate", sc.trace_state.to_header().encode("latin-1")))
        return out

    def end(self, rec: RequestRecord) -> None:
        span: SdkSpan = rec.span
        end_ns = rec.t_wall + ((rec.t_end or rec.t_arrival) - rec.t_arrival)
        if not span.is_recording():
            span.end(end_time=end_ns)
            return
        attrs = span_attributes(rec, self.server_address, self.server_port)
        operation = _OPERATION.get(rec.endpoint)
        model = rec.request_model
        if operation is not None and model:
            span.update_name(f"{operation} {model[:128]}")
        span.set_attributes(attrs)
        if rec.outcome in (UPSTREAM_ERROR, REJECTED) or rec.code >= 500:
            span.set_status(Status(StatusCode.ERROR, str(attrs.get("error.type", ""))))
        span.end(end_time=end_ns)

    def close(self, timeout: float) -> None:
        """Flush what is queued; a dead collector may not hold shutdown longer than ``timeout``."""
        worker = threading.Thread(target=self.provider.shutdown, name="infermeter-tracing-shutdown", daemon=True)
        worker.start()
        worker.join(timeout)


def span_attributes(rec: RequestRecord, server_address: str, server_port: int) -> dict[str, AttributeValue]:
    """What the span says about a finished request: its ids, never its content."""
    a: dict[str, AttributeValue] = {
        "http.request.method": rec.method,
        "server.address": server_address,
        "server.port": server_port,
        "infermeter.endpoint": rec.endpoint,
        "infermeter.outcome": rec.outcome,
    }
    if rec.request_id is not None:
        a["infermeter.request_id"] = rec.request_id
    if rec.code:
        a["http.response.status_code"] = rec.code
    operation = _OPERATION.get(rec.endpoint)
    if operation is not None:
        a["gen_ai.operation.name"] = operation
        a["gen_ai.provider.name"] = _PROVIDER[rec.endpoint]
        info = rec.request
        if info is not None:
            if info.model:
                a["gen_ai.request.model"] = info.model[:128]
            if operation != "embeddings":
                a["gen_ai.request.stream"] = info.stream
            if info.max_tokens is not None:
                a["gen_ai.request.max_tokens"] = info.max_tokens
            if info.temperature is not None:
                a["gen_ai.request.temperature"] = info.temperature
            if info.top_p is not None:
                a["gen_ai.request.top_p"] = info.top_p
        report = rec.report
        if report.model:
            a["gen_ai.response.model"] = report.model[:128]
        if report.input_tokens is not None:
            a["gen_ai.usage.input_tokens"] = report.input_tokens
        # Only exact counts take the convention's name; events counted by the proxy are
        # not tokens, and a vLLM span in the same trace reports the exact ones.
        if report.output_tokens is not None:
            a["gen_ai.usage.output_tokens"] = report.output_tokens
        elif rec.tokens_estimated:
            a["infermeter.usage.estimated_output_tokens"] = report.token_events
        if report.finish_reason is not None:
            a["gen_ai.response.finish_reasons"] = (report.finish_reason,)
        ttft = rec.ttft_s
        if ttft is not None:
            a["gen_ai.response.time_to_first_chunk"] = ttft
        tpot = rec.tpot_s
        if tpot is not None:
            a["infermeter.tpot"] = tpot
        if rec.checks_failed:  # response checks (DESIGN.md section 15): the ones this answer failed
            a["infermeter.checks_failed"] = tuple(rec.checks_failed)
    headers = rec.headers_s
    if headers is not None:
        a["infermeter.upstream_headers"] = headers
    a["infermeter.stream"] = rec.stream
    if rec.outcome != COMPLETED:
        a["error.type"] = rec.outcome if rec.outcome != CANCELLED else "cancelled"
    elif rec.code >= 500:
        a["error.type"] = str(rec.code)
    return a
