"""One OpenTelemetry span per relayed request, exported over OTLP by the official SDK.

Imported only when tracing is on (``factory.py``). This module owns the span's life: it
starts at the request's arrival and ends at the last byte to the client, both wall-clock
times derived from the record's one ``time.time_ns()`` and its monotonic stamps, so span
duration and the metrics' duration are the same number. What the span says is
``attributes.py``; where it goes is ``exporter.py``; the bounded queue in front of the
exporter is ``spanpipe.py``.
"""

from __future__ import annotations

import logging
import os
import threading
from collections.abc import Mapping

from opentelemetry.context import Context
from opentelemetry.sdk.trace import Span as SdkSpan
from opentelemetry.sdk.trace import TracerProvider
from opentelemetry.trace import SpanKind, Status, StatusCode
from opentelemetry.trace.propagation.tracecontext import TraceContextTextMapPropagator

from proxy import __version__
from proxy.config import Settings
from proxy.drilldown.attributes import span_attributes, span_failed, span_name, start_name
from proxy.drilldown.exporter import env_int, otlp_exporter, protocol, resource
from proxy.drilldown.spanpipe import BoundedProcessor, SpanPipe
from proxy.metrics.definitions import SpanMetrics
from proxy.timing import RequestRecord

log = logging.getLogger("infermeter.tracing")

_ROOT = Context()


class Tracing:
    def __init__(self, settings: Settings, metrics: SpanMetrics, env: Mapping[str, str] | None = None) -> None:
        env = os.environ if env is None else env
        exporter, target = otlp_exporter(settings, env)
        self.target = target
        self.pipe = SpanPipe(exporter, env_int(env, "OTEL_BSP_MAX_QUEUE_SIZE", 2048), metrics, target)
        # The sampler comes from OTEL_TRACES_SAMPLER / _ARG (default: parentbased_always_on).
        self.provider = TracerProvider(resource=resource())
        self.provider.add_span_processor(BoundedProcessor(self.pipe, env_int(env, "OTEL_BSP_MAX_EXPORT_BATCH_SIZE", 512)))
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
        span = self.tracer.start_span(start_name(rec), context=context, kind=SpanKind.CLIENT,
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
        name = span_name(rec)
        if name is not None:
            span.update_name(name)
        span.set_attributes(attrs)
        if span_failed(rec):
            span.set_status(Status(StatusCode.ERROR, str(attrs.get("error.type", ""))))
        span.end(end_time=end_ns)

    def close(self, timeout: float) -> None:
        """Flush what is queued; a dead collector may not hold shutdown longer than ``timeout``."""
        worker = threading.Thread(target=self.provider.shutdown, name="infermeter-tracing-shutdown", daemon=True)
        worker.start()
        worker.join(timeout)
