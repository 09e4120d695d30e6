"""The one record of a request: the relay stamps times, the tap fills what the server said,
the recorder reads the finished record.

All stamps are ``time.perf_counter_ns()`` taken in the proxy (DESIGN.md section 5).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from proxy.stream.base import RequestInfo, StreamSummary

COMPLETED = "completed"
CANCELLED = "cancelled"
UPSTREAM_ERROR = "upstream_error"
REJECTED = "rejected"
OUTCOMES = (COMPLETED, CANCELLED, UPSTREAM_ERROR, REJECTED)

# Gaps between token events are held until this many, then folded by the recorder into
# per-bucket counts, so an endless stream costs constant memory (issue 15: one stored gap
# per event grew 15 MB in 45 s).
GAP_BUFFER = 256


@dataclass(slots=True)
class RequestRecord:
    endpoint: str
    t_arrival: int
    stream: bool = False
    code: int = 0
    outcome: str = COMPLETED
    t_headers: int | None = None
    t_first: int | None = None
    t_last: int | None = None
    t_end: int | None = None
    # What the server said about the request, filled in place by the response's tap.
    summary: StreamSummary = field(default_factory=StreamSummary)
    # Gaps between consecutive token events not yet handed to the recorder, ns. Events
    # that arrive in one chunk are 0 apart, as the client sees them: those are counted.
    gaps_ns: list[int] = field(default_factory=list)
    zero_gaps: int = 0
    # Gaps already folded away (a stream past GAP_BUFFER): counts per time-between-tokens
    # bucket and their sum, ns. Observed only when the request ends, under the model label
    # it ends with: a server may name the model in its last event only (issue 19).
    gap_counts: list[int] | None = None
    gap_sum_ns: int = 0
    # Drill-down (DESIGN.md section 12). Wall-clock arrival, time.time_ns() taken once with
    # t_arrival: the log line's time and the span's start; later wall times are derived
    # from it and the monotonic stamps.
    t_wall: int = 0
    request_id: str | None = None
    method: str = ""
    path: str = ""
    # Why the upstream gave no (complete) response, in the transport's words, which name
    # the upstream: for the request log; clients see it only with --expose-upstream-errors.
    upstream_error: str | None = None
    # What the request asked for (model, stream, max_tokens, ...), once its body was read.
    request: RequestInfo | None = None
    # The span of a traced request (None when tracing is off) and, when it is sampled, its
    # ids in hex: the exemplars and the log line carry them.
    span: Any = None
    trace_id: str | None = None
    span_id: str | None = None
    # The model label the recorder put the request's metrics under, handed to the
    # drill-down with the finished record so the log line joins the metrics exactly.
    model_label: str | None = None
    # Who the request is for (DESIGN.md section 14), set at arrival when a tenant source is
    # set: a name, "key:" + 8 hex digits of an unknown key's digest, "invalid" or "none";
    # never a key. The recorder puts its tenant series under tenant_label (capped).
    tenant: str = "none"
    tenant_label: str | None = None
    # Response checks (DESIGN.md section 15): the checks watching the answer while it streams
    # (a proxy.quality.checks.ResponseChecks), then each (check, result) and the failed checks'
    # names; None when the answer was not checked.
    quality: Any = None
    checks: list[tuple[str, str]] | None = None
    checks_failed: list[str] | None = None
    # The GPU time (s) and energy (J) attributed to the request (DESIGN.md section 14),
    # summed over its sampling intervals; None when no GPU is read.
    gpu_seconds: float | None = None
    energy_joules: float | None = None

    def tokens(self, n: int, now: int) -> bool:
        """``n`` token events completed in a chunk that arrived at ``now``.

        True when the held gaps reached ``GAP_BUFFER`` and should be folded into counts."""
        if self.t_last is None:
            self.t_first = now
        else:
            self.gaps_ns.append(now - self.t_last)
        self.zero_gaps += n - 1
        self.t_last = now
        return len(self.gaps_ns) >= GAP_BUFFER

    @property
    def request_model(self) -> str | None:
        return None if self.request is None else self.request.model

    @property
    def model(self) -> str | None:
        """The response's model when it names one, else the request's (DESIGN.md section 6)."""
        return self.summary.model or self.request_model

    @property
    def token_events(self) -> int:
        return self.summary.token_events

    @property
    def input_tokens(self) -> int | None:
        return self.summary.input_tokens

    @property
    def output_tokens(self) -> int | None:
        """Exact when the server reported it, else the token events seen (DESIGN.md section 4)."""
        reported = self.summary.output_tokens
        if reported is not None:
            return reported
        return self.summary.token_events or None

    @property
    def tokens_estimated(self) -> bool:
        return self.summary.output_tokens is None and self.summary.token_events > 0

    @property
    def finish_reason(self) -> str | None:
        return self.summary.finish_reason

    @property
    def parse_errors(self) -> int:
        return self.summary.parse_errors

    @property
    def exemplar(self) -> dict[str, str] | None:
        """The exemplar for this request's observations: its sampled span, else its request id."""
        if self.trace_id is not None and self.span_id is not None:
            return {"trace_id": self.trace_id, "span_id": self.span_id}
        if self.request_id is not None:
            return {"request_id": self.request_id}
        return None

    @property
    def duration_s(self) -> float:
        return ((self.t_end or self.t_arrival) - self.t_arrival) / 1e9

    @property
    def headers_s(self) -> float | None:
        return None if self.t_headers is None else (self.t_headers - self.t_arrival) / 1e9

    @property
    def ttft_s(self) -> float | None:
        return None if self.t_first is None else (self.t_first - self.t_arrival) / 1e9

    @property
    def tpot_s(self) -> float | None:
        n = self.output_tokens
        if self.t_first is None or self.t_last is None or n is None or n < 2:
            return None
        return (self.t_last - self.t_first) / 1e9 / (n - 1)
