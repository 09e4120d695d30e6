"""What the relay calls per request: ``begin`` at arrival, ``outgoing`` on the upstream's
headers, ``finish`` once the record is final.

With tracing and the request log off this is a request id and nothing else: the id is
read from the client's headers (or made), passed upstream, and the exemplars carry it.
"""

from __future__ import annotations

import logging
from typing import TYPE_CHECKING, Any

from proxy.drilldown.ids import REQUEST_ID, client_request_id, new_request_id
from proxy.forward.base import RawHeaders
from proxy.timing import RequestRecord

if TYPE_CHECKING:
    from proxy.drilldown.requestlog import RequestLog
    from proxy.drilldown.tracing import Tracing

log = logging.getLogger("infermeter.drilldown")

TRACEPARENT = b"traceparent"
TRACESTATE = b"tracestate"


class Drilldown:
    def __init__(self, tracing: Tracing | None = None, request_log: RequestLog | None = None) -> None:
        self.tracing = tracing
        self.request_log = request_log
        self._finish_failed = False
        self._closed = False

    def begin(self, scope: Any, rec: RequestRecord) -> None:
        """At arrival: the request id and, when tracing, the span (continuing the client's trace).

        Reads ``scope["headers"]`` before the body: trailers an ASGI server appends later
        never count."""
        rec.method = scope["method"]
        rec.path = scope["path"]
        rid = parent = state = None
        for name, value in scope["headers"]:
            if name == REQUEST_ID:
                if rid is None:
                    rid = client_request_id(value)
            elif name == TRACEPARENT:
                parent = value
            elif name == TRACESTATE:
                state = value
        rec.request_id = rid if rid is not None else new_request_id()
        if self.tracing is not None:
            self.tracing.start(rec, parent, state)

    def outgoing(self, headers: RawHeaders, rec: RequestRecord) -> None:
        """Rewrite the upstream's request headers: our request id, and our span as the parent."""
        tracing = self.tracing
        names = (REQUEST_ID, TRACEPARENT, TRACESTATE) if tracing is not None and rec.span is not None else (REQUEST_ID,)
        headers[:] = [(n, v) for n, v in headers if n.lower() not in names]
        assert rec.request_id is not None
        headers.append((REQUEST_ID, rec.request_id.encode("ascii")))
        if tracing is not None and rec.span is not None:
            headers.extend(tracing.headers(rec))

    def finish(self, rec: RequestRecord, model_label: str | None = None, write: bool = True) -> None:
        """The record is final: end the span, write the log line. ``model_label`` is the
        one the recorder put its metrics under (None without metrics: the log says the model).
        ``write`` False leaves the line to GPU attribution, once the request's last
        sampling interval is settled (proxy.attribution)."""
        rec.model_label = model_label
        if rec.request_id is None:
            rec.request_id = new_request_id()
        try:
            if rec.span is not None and self.tracing is not None:
                self.tracing.end(rec)
            if self.request_log is not None and write:
                self.request_log.put(rec)
        except Exception:  # drill-down must never break the relay's cleanup
            if not self._finish_failed:
                self._finish_failed = True
                log.exception("drill-down failed for a request (logged once)")

    def close(self, timeout: float = 5.0) -> None:
        """Flush spans and log lines (blocking: call off the event loop). Idempotent."""
        if self._closed:
            return
        self._closed = True
        if self.tracing is not None:
            self.tracing.close(timeout)
        if self.request_log is not None:
            self.request_log.close(timeout)
