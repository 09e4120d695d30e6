"""Every request-path series of DESIGN.md section 6, on one registry.

Nothing registers at import time: ``Metrics(registry, settings)`` builds the families on
the registry it is given, so each app (and each test) owns a fresh one.
"""

from __future__ import annotations

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram
from prometheus_client.core import GaugeMetricFamily

from proxy import __version__
from proxy.config import Settings
from proxy.metrics import buckets
from proxy.stream.base import PHASES
from proxy.stream.endpoints import ENDPOINTS

NS = "infermeter"
EM = ("endpoint", "model")


class Metrics:
    def __init__(self, registry: CollectorRegistry, settings: Settings) -> None:
        r = registry
        self.requests = Counter(f"{NS}_requests", "Requests answered, by the status sent to the client and how they ended.",
                                ("endpoint", "model", "code", "outcome"), registry=r)
        self.in_flight = Gauge(f"{NS}_requests_in_flight", "Requests being relayed now.", ("endpoint",), registry=r)
        self.request_duration = Histogram(
            f"{NS}_request_duration_seconds", "From request arrival to the last byte handed to the client.",
            ("endpoint", "model", "stream"), registry=r,
            buckets=buckets.with_thresholds(buckets.REQUEST_DURATION, settings.slo_request_duration))
        self.upstream_headers = Histogram(
            f"{NS}_upstream_response_headers_seconds", "From request arrival to the upstream's response headers.",
            ("endpoint",), registry=r, buckets=buckets.TTFT)
        self.ttft = Histogram(
            f"{NS}_time_to_first_token_seconds", "From request arrival to the first token event of a stream.",
            EM, registry=r, buckets=buckets.with_thresholds(buckets.TTFT, settings.slo_ttft))
        self.tbt = Histogram(
            f"{NS}_time_between_tokens_seconds", "Gap between consecutive token events of a stream.",
            EM, registry=r, buckets=buckets.INTER_TOKEN)
        self.tpot = Histogram(
            f"{NS}_time_per_output_token_seconds", "(last token - first token) / (output tokens - 1), per stream.",
            EM, registry=r, buckets=buckets.with_thresholds(buckets.INTER_TOKEN, settings.slo_tpot))
        self.tokens_per_second = Histogram(
            f"{NS}_output_tokens_per_second", "Output tokens / request duration, per request with output.",
            EM, registry=r, buckets=buckets.TOKENS_PER_SECOND)
        self.tokens = Counter(f"{NS}_tokens", "Tokens processed, input (prompt) and output (generated).",
                              (*EM, "type"), registry=r)
        self.request_tokens = Histogram(f"{NS}_request_tokens", "Tokens per request, input and output.",
                                        (*EM, "type"), registry=r, buckets=buckets.TOKENS)
        self.cached_input_tokens = Counter(
            f"{NS}_cached_input_tokens", "Input tokens the server served from its prefix cache, as it reported them "
            "(a subset of input).", EM, registry=r)
        self.reasoning_output_tokens = Counter(
            f"{NS}_reasoning_output_tokens", "Reasoning tokens, as the server reported them (a subset of output).",
            EM, registry=r)
        # Label children appear per phase once a server reports it: most servers report none.
        self.upstream_phase = Histogram(
            f"{NS}_upstream_phase_seconds", f"Time the server itself reported for a phase of the request ({', '.join(PHASES)}).",
            (*EM, "phase"), registry=r, buckets=buckets.PHASE)
        self.finish_reasons = Counter(f"{NS}_finish_reasons", "Why generation ended, per request.",
                                      (*EM, "reason"), registry=r)
        self.estimated = Counter(f"{NS}_token_counts_estimated",
                                 "Requests whose output tokens were counted from token events, not reported by the server.",
                                 ("endpoint",), registry=r)
        self.parse_errors = Counter(f"{NS}_stream_parse_errors", "Response events the tap could not parse (bytes still relayed).",
                                    ("endpoint",), registry=r)
        self.slo = (Counter(f"{NS}_slo_requests", "Finished requests that met or missed every SLO set.",
                            (*EM, "result"), registry=r) if settings.slo_thresholds else None)
        self.tenants = TenantMetrics(r, bool(settings.slo_thresholds)) if settings.tenants_on else None
        registry.register(_BuildInfo())
        # The endpoint set is closed: bind these children once, up front.
        self.in_flight_by_endpoint = {e: self.in_flight.labels(e) for e in ENDPOINTS}
        self.headers_by_endpoint = {e: self.upstream_headers.labels(e) for e in ENDPOINTS}
        self.estimated_by_endpoint = {e: self.estimated.labels(e) for e in ENDPOINTS}
        self.parse_errors_by_endpoint = {e: self.parse_errors.labels(e) for e in ENDPOINTS}


class TenantMetrics:
    """Per-tenant counters (DESIGN.md section 14), only when a tenant source is set. Counters
    only: a histogram's bucket series per tenant would multiply the series by the cap."""

    def __init__(self, registry: CollectorRegistry, slo: bool) -> None:
        labels = ("tenant", "model")
        self.requests = Counter(f"{NS}_tenant_requests", "Requests answered, by tenant and how they ended.",
                                (*labels, "outcome"), registry=registry)
        self.tokens = Counter(f"{NS}_tenant_tokens", "Tokens by tenant: input, output, and the cached_input and "
                              "reasoning subsets the server reported.", (*labels, "type"), registry=registry)
        self.slo = Counter(f"{NS}_tenant_slo_requests", "Finished requests that met or missed every SLO set, by tenant.",
                           (*labels, "result"), registry=registry) if slo else None


class SpanMetrics:
    """The span pipeline's own counters (DESIGN.md section 12); only when tracing is on.

    Written from the exporter's thread, never from the relay."""

    def __init__(self, registry: CollectorRegistry) -> None:
        self.exported = Counter(f"{NS}_spans_exported", "Spans the OTLP collector accepted.", registry=registry)
        self.dropped = Counter(f"{NS}_spans_dropped",
                               "Spans lost: the export queue was full, or the collector failed or refused them.",
                               ("reason",), registry=registry)
        for reason in ("queue_full", "export_failed"):
            self.dropped.labels(reason)


class RequestLogMetrics:
    """The request log's own counters (DESIGN.md section 12); only with --request-log."""

    def __init__(self, registry: CollectorRegistry) -> None:
        self.lines = Counter(f"{NS}_request_log_lines", "Request log lines written.", registry=registry)
        self.dropped = Counter(f"{NS}_request_log_dropped",
                               "Request log lines lost: the writer was behind (queue_full) or the write failed.",
                               ("reason",), registry=registry)
        for reason in ("queue_full", "write_failed"):
            self.dropped.labels(reason)


class QualityMetrics:
    """Response checks and evaluations (DESIGN.md section 15): the checks' counter when checks
    are on, the judge's series when a judge is set."""

    def __init__(self, registry: CollectorRegistry, checks: bool, evals: bool) -> None:
        self.checks = Counter(
            f"{NS}_response_checks", "Checks of completed answers (empty, json, tool_arguments, repetition) by result.",
            (*EM, "check", "result"), registry=registry) if checks else None
        self.eval_score = Histogram(
            f"{NS}_eval_score", "Scores a judge model gave sampled answers, per rubric (0 to 1).",
            ("model", "rubric"), registry=registry, buckets=[i / 10 for i in range(1, 11)]) if evals else None
        self.evals = Counter(f"{NS}_evals", "Evaluations by the judge, by outcome (scored, failed, dropped).",
                             ("rubric", "outcome"), registry=registry) if evals else None


class _BuildInfo:
    def collect(self) -> list[GaugeMetricFamily]:
        family = GaugeMetricFamily(f"{NS}_build_info", "infermeter build; always 1.", labels=["version"])
        family.add_metric([__version__], 1.0)
        return [family]
