"""The one hot-path writer of request metrics: finished ``RequestRecord`` in, metric updates out.

Label children are bound once per (endpoint, model) and kept; a record costs a few
bound ``observe``/``inc`` calls plus one per token gap. Histogram children observe
through ``fastobserve`` (bisection over the 70-100 buckets instead of a linear walk).

A request's observations all land under the one model label it ends with, which only
the finished record decides (a llama.cpp stream names its model in its last event): a
long stream's gaps are folded mid-stream into per-bucket counts on the record, and
observed with the rest at the end (issue 19). ``record`` returns that label; the relay
hands it to the drill-down with the record, so the log line carries it too.
"""

from __future__ import annotations

from bisect import bisect_left
from dataclasses import dataclass
from typing import Any

from proxy.config import Settings
from proxy.metrics.definitions import Metrics
from proxy.metrics.fastobserve import check_hooks, fast, upper_bounds
from proxy.metrics.labels import ModelLabels
from proxy.metrics.tenants import TenantCounters, TenantLabels
from proxy.stream.base import FINISH_REASONS
from proxy.stream.endpoints import OTHER
from proxy.timing import CANCELLED, COMPLETED, REJECTED, RequestRecord


@dataclass(slots=True)
class _Children:
    duration_stream: Any
    duration_plain: Any
    ttft: Any
    tbt: Any
    tpot: Any
    tps: Any
    tokens_in: Any
    tokens_out: Any
    request_tokens_in: Any
    request_tokens_out: Any
    cached_in: Any
    reasoning_out: Any
    # Bound on a phase's first report: ~100 bucket series each, and most servers report none.
    phases: dict[str, Any]
    finish: dict[str, Any]
    slo_met: Any
    slo_missed: Any


class Recorder:
    def __init__(self, metrics: Metrics, settings: Settings, models: ModelLabels | None = None,
                 tenants: TenantLabels | None = None) -> None:
        self.m = metrics
        # --workers passes the caps every worker shares (proxy.workers.models).
        self.models = models if models is not None else ModelLabels(settings.max_models)
        # Tenant series (DESIGN.md section 14) only when a tenant source is set.
        self.tenants: TenantLabels | None = None
        self._tenants: TenantCounters | None = None
        if metrics.tenants is not None:
            self.tenants = tenants if tenants is not None else TenantLabels(settings.max_tenants)
            self._tenants = TenantCounters(metrics.tenants, self.tenants)
        self.slo_ttft = settings.slo_ttft
        self.slo_tpot = settings.slo_tpot
        self.slo_duration = settings.slo_request_duration
        self._children: dict[tuple[str, str], _Children] = {}
        self._requests: dict[tuple[str, str, int, str], Any] = {}
        self._headers = {endpoint: fast(child) for endpoint, child in metrics.headers_by_endpoint.items()}
        check_hooks()
        # Every TBT child shares these: a stream's gaps are counted per bucket before its
        # label, and so its child, is known.
        self._tbt_bounds = upper_bounds(metrics.tbt)
        self._zero_bucket = bisect_left(self._tbt_bounds, 0.0)

    def started(self, endpoint: str) -> None:
        self.m.in_flight_by_endpoint[endpoint].inc()

    def model_label(self, rec: RequestRecord) -> str:
        # Only a server's successful answer may take a new label slot: it knows its models,
        # while a client can name any (issue 15: junk names took every slot).
        return self.models(rec.model, admit=200 <= rec.code < 300)

    def drain_gaps(self, rec: RequestRecord) -> None:
        """Fold the token gaps the record holds into its per-bucket counts (constant memory
        per stream); ``record`` observes them under the label the request ends with."""
        self._fold(rec)

    def _fold(self, rec: RequestRecord) -> list[int]:
        bounds = self._tbt_bounds
        counts = rec.gap_counts
        if counts is None:
            counts = rec.gap_counts = [0] * len(bounds)
        total = 0
        for gap in rec.gaps_ns:
            # The bucket FastObserve.observe(gap / 1e9) would pick.
            counts[bisect_left(bounds, gap / 1e9)] += 1
            total += gap
        rec.gap_sum_ns += total
        counts[self._zero_bucket] += rec.zero_gaps
        rec.gaps_ns.clear()
        rec.zero_gaps = 0
        return counts

    def _observe_gaps(self, rec: RequestRecord, tbt: Any) -> None:
        if rec.gap_counts is None:
            # Never folded (fewer than GAP_BUFFER gaps): observed one by one, as cheap as
            # it was for the short streams most requests are.
            observe = tbt.observe
            for gap in rec.gaps_ns:
                observe(gap / 1e9)
            for _ in range(rec.zero_gaps):
                observe(0.0)
            rec.gaps_ns.clear()
            rec.zero_gaps = 0
            return
        counts = self._fold(rec)
        tbt.observe_counts(counts, rec.gap_sum_ns / 1e9)
        rec.gap_counts = None
        rec.gap_sum_ns = 0

    def record(self, rec: RequestRecord) -> str:
        """Write the finished record's metrics; the model label they went under."""
        m = self.m
        m.in_flight_by_endpoint[rec.endpoint].dec()
        model = self.model_label(rec)
        key = (rec.endpoint, model, rec.code, rec.outcome)
        counter = self._requests.get(key)
        if counter is None:
            counter = self._requests[key] = m.requests.labels(rec.endpoint, model, str(rec.code), rec.outcome)
        counter.inc()
        if rec.outcome == REJECTED:
            if self._tenants is not None:
                self._tenants.record(rec, model, None)
            return model
        c = self._bind(rec.endpoint, model)
        duration = rec.duration_s
        # Exemplars (OpenMetrics only): the sampled span's ids, else the request id.
        exemplar = rec.exemplar
        (c.duration_stream if rec.stream else c.duration_plain).observe(duration, exemplar)
        headers = rec.headers_s
        if headers is not None:
            self._headers[rec.endpoint].observe(headers)
        if rec.parse_errors:
            m.parse_errors_by_endpoint[rec.endpoint].inc(rec.parse_errors)
        ttft = rec.ttft_s
        if ttft is not None:
            c.ttft.observe(ttft, exemplar)
            if rec.gaps_ns or rec.zero_gaps or rec.gap_counts is not None:
                self._observe_gaps(rec, c.tbt)
        if rec.tokens_estimated:
            m.estimated_by_endpoint[rec.endpoint].inc()
        out = rec.output_tokens
        if out is not None:
            c.tokens_out.inc(out)
            c.request_tokens_out.observe(out)
            if out >= 1 and duration > 0:
                c.tps.observe(out / duration)
        if rec.input_tokens is not None:
            c.tokens_in.inc(rec.input_tokens)
            c.request_tokens_in.observe(rec.input_tokens)
        summary = rec.summary
        if summary.cached_input_tokens is not None:
            c.cached_in.inc(summary.cached_input_tokens)
        if summary.reasoning_output_tokens is not None:
            c.reasoning_out.inc(summary.reasoning_output_tokens)
        if summary.phases:
            self._phases(rec.endpoint, model, c, summary.phases)
        tpot = rec.tpot_s
        if tpot is not None:
            c.tpot.observe(tpot, exemplar)
        if rec.finish_reason is not None:
            c.finish[rec.finish_reason].inc()
        # SLOs are about inference: /v1/models or /health answers say nothing of them.
        met = None
        if c.slo_met is not None and rec.outcome != CANCELLED and rec.endpoint != OTHER:
            met = self._slo_met(rec, ttft, tpot, duration)
            (c.slo_met if met else c.slo_missed).inc()
        if self._tenants is not None:
            self._tenants.record(rec, model, met)
        return model

    def _slo_met(self, rec: RequestRecord, ttft: float | None, tpot: float | None, duration: float) -> bool:
        # A request that failed cannot meet an SLO; a threshold whose figure the request
        # does not have (TTFT of a non-stream) is not held against it.
        if rec.outcome != COMPLETED or rec.code >= 500:
            return False
        if self.slo_ttft is not None and ttft is not None and ttft > self.slo_ttft:
            return False
        if self.slo_tpot is not None and tpot is not None and tpot > self.slo_tpot:
            return False
        return not (self.slo_duration is not None and duration > self.slo_duration)

    def _phases(self, endpoint: str, model: str, c: _Children, phases: dict[str, float]) -> None:
        """Observe each phase the server reported (DESIGN.md section 13)."""
        bound = c.phases
        for phase, seconds in phases.items():
            child = bound.get(phase)
            if child is None:
                child = bound[phase] = fast(self.m.upstream_phase.labels(endpoint, model, phase))
            child.observe(seconds)

    def _bind(self, endpoint: str, model: str) -> _Children:
        c = self._children.get((endpoint, model))
        if c is not None:
            return c
        m = self.m
        slo = m.slo
        c = _Children(
            duration_stream=fast(m.request_duration.labels(endpoint, model, "true")),
            duration_plain=fast(m.request_duration.labels(endpoint, model, "false")),
            ttft=fast(m.ttft.labels(endpoint, model)),
            tbt=fast(m.tbt.labels(endpoint, model)),
            tpot=fast(m.tpot.labels(endpoint, model)),
            tps=fast(m.tokens_per_second.labels(endpoint, model)),
            tokens_in=m.tokens.labels(endpoint, model, "input"),
            tokens_out=m.tokens.labels(endpoint, model, "output"),
            request_tokens_in=fast(m.request_tokens.labels(endpoint, model, "input")),
            request_tokens_out=fast(m.request_tokens.labels(endpoint, model, "output")),
            cached_in=m.cached_input_tokens.labels(endpoint, model),
            reasoning_out=m.reasoning_output_tokens.labels(endpoint, model),
            phases={},
            finish={r: m.finish_reasons.labels(endpoint, model, r) for r in FINISH_REASONS},
            slo_met=slo.labels(endpoint, model, "met") if slo is not None else None,
            slo_missed=slo.labels(endpoint, model, "missed") if slo is not None else None,
        )
        self._children[(endpoint, model)] = c
        return c
