"""In front of the OTLP exporter: a bounded queue, and every span's fate counted.

The SDK's ``BatchSpanProcessor`` exports from its own thread, but its queue drops the
oldest span uncounted when full. ``SpanPipe`` admits at most ``limit`` spans into it and
counts each one that does not make it (a full queue, a failed export), so a dead or slow
collector costs the relay one admission check per request and shows up in
``infermeter_spans_dropped_total``, with one log line per change of state.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Sequence

from opentelemetry.sdk.trace import ReadableSpan
from opentelemetry.sdk.trace.export import BatchSpanProcessor, SpanExporter, SpanExportResult

from proxy.metrics.definitions import SpanMetrics
from proxy.trouble import Trouble

log = logging.getLogger("infermeter.tracing")


class SpanPipe(SpanExporter):
    """Wraps the OTLP exporter: bounds the processor's queue and counts every span's fate."""

    def __init__(self, exporter: SpanExporter, limit: int, metrics: SpanMetrics, target: str) -> None:
        self.exporter = exporter
        self.limit = limit
        self.target = target
        self.exported = metrics.exported
        self.full = Trouble(log, metrics.dropped.labels("queue_full"))
        self.failing = Trouble(log, metrics.dropped.labels("export_failed"))
        self._lock = threading.Lock()
        self._pending = 0

    def admit(self) -> bool:
        """A span ended: may it join the queue? Counted as dropped when not."""
        with self._lock:
            room = self._pending < self.limit
            if room:
                self._pending += 1
        if not room:
            self.full.hit(True, "span queue full (%d spans; collector %s slow or down): dropping spans, "
                          "counted in infermeter_spans_dropped_total", self.limit, self.target)
            return False
        if self.full.state is not None:  # per span, on the event loop: test before calling
            self.full.clear("span queue has room again")
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
            self.failing.clear("span export to %s works again", self.target)
        else:
            self.failing.hit(True, "span export to %s failed: dropping spans, counted in "
                             "infermeter_spans_dropped_total", self.target, n=n)
        return result

    def shutdown(self) -> None:
        self.exporter.shutdown()

    def force_flush(self, timeout_millis: int = 30000) -> bool:
        return self.exporter.force_flush(timeout_millis)


class BoundedProcessor(BatchSpanProcessor):
    def __init__(self, pipe: SpanPipe, batch: int) -> None:
        # One slot more than the pipe admits: the SDK's own queue never overflows (it
        # would drop the oldest span uncounted).
        super().__init__(pipe, max_queue_size=pipe.limit + 1, max_export_batch_size=min(batch, pipe.limit))
        self.pipe = pipe

    def on_end(self, span: ReadableSpan) -> None:
        if span.context is not None and span.context.trace_flags.sampled and self.pipe.admit():
            super().on_end(span)
