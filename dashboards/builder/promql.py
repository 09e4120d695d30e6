"""PromQL fragments shared by the dashboards.

Every query aggregates across instances before it divides or takes a quantile, so a
fleet of sidecars reads as one server: ``sum by (le)`` of bucket rates, then
``histogram_quantile``; sums of ``_sum`` over sums of ``_count`` for means.
"""

from __future__ import annotations

RATE = "$__rate_interval"
RANGE = "$__range"

# Label filters by what a series carries (DESIGN.md section 6).
HOST = 'job=~"$job",instance=~"$instance"'
ENDPOINT = HOST + ',endpoint=~"$endpoint"'
SERVING = ENDPOINT + ',model=~"$model"'


def sel(metric: str, filters: str, extra: str = "") -> str:
    inner = f"{filters},{extra}" if extra else filters
    return f"{metric}{{{inner}}}"


def rate(metric: str, filters: str, extra: str = "", window: str = RATE) -> str:
    return f"rate({sel(metric, filters, extra)}[{window}])"


def increase(metric: str, filters: str, extra: str = "", window: str = RANGE) -> str:
    return f"increase({sel(metric, filters, extra)}[{window}])"


def quantile(q: float, histogram: str, filters: str, by: str = "") -> str:
    labels = f"{by}, le" if by else "le"
    return f"histogram_quantile({q}, sum by ({labels}) ({rate(histogram + '_bucket', filters)}))"


def mean(histogram: str, filters: str, by: str = "") -> str:
    group = f" by ({by})" if by else ""
    return f"sum{group}({rate(histogram + '_sum', filters)}) / sum{group}({rate(histogram + '_count', filters)})"


def zero_filled_ratio(numerator: str, denominator: str) -> str:
    """numerator / denominator, reading 0 (not "no data") while the numerator has no series.

    Both sides must carry the same labels: the denominator's series, times zero, stand in
    for the missing numerator series.
    """
    return f"({numerator} or 0 * {denominator}) / {denominator}"


def errors(filters: str, by: str = "", window: str = RATE) -> str:
    """Requests that failed on the server side: the upstream could not be reached or broke
    (outcome upstream_error, 502/504 or a stream cut short), or it answered 5xx itself.
    Cancelled (client left) and rejected (413) requests are the client's doing, not errors."""
    group = f" by ({by})" if by else ""
    broken = rate("infermeter_requests_total", filters, 'outcome="upstream_error"', window)
    server = rate("infermeter_requests_total", filters, 'outcome="completed",code=~"5.."', window)
    return f"sum{group}({broken} or {server})"


def requests(filters: str, by: str = "", window: str = RATE) -> str:
    group = f" by ({by})" if by else ""
    return f"sum{group}({rate('infermeter_requests_total', filters, window=window)})"


def error_ratio(filters: str, by: str = "", window: str = RATE) -> str:
    return zero_filled_ratio(errors(filters, by, window), requests(filters, by, window))


def le_matcher(variable: str) -> str:
    """Matches a bucket bound typed without trailing zeros: prometheus-client writes
    ``le="10.0"``, Prometheus 3 stores ``le="10"``; either way ``10|10.0`` finds it."""
    return f'le=~"${{{variable}}}|${{{variable}}}.0"'
