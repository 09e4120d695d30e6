"""The Serving dashboard: traffic, latency, tokens, completion and SLOs."""

from __future__ import annotations

from dashboards.builder import quality
from dashboards.builder.model import (
    Dashboard,
    Panel,
    Row,
    Target,
    VariableModel,
    dashboard,
    heatmap,
    request_variables,
    stat,
    textbox_variable,
    timeseries,
)
from dashboards.builder.promql import (
    ENDPOINT,
    RANGE,
    SERVING,
    error_ratio,
    increase,
    le_matcher,
    mean,
    quantile,
    rate,
    requests,
    sel,
    zero_filled_ratio,
)

QUANTILES = (0.5, 0.9, 0.99)
OUTPUT = 'type="output"'
MET = 'result="met"'


def latency(title: str, histogram: str, definition: str, filters: str = SERVING, width: int = 12,
            exemplars: bool = False) -> Panel:
    # Exemplars ride on the p99 query: one set of points per panel is enough to click through.
    targets = [Target(quantile(q, histogram, filters), f"p{round(q * 100)}", exemplar=exemplars and q == QUANTILES[-1])
               for q in QUANTILES]
    targets.append(Target(mean(histogram, filters), "mean"))
    description = (f"{definition} p50, p90 and p99 come from the histogram buckets of every selected instance, "
                   "summed by le before histogram_quantile, so they are fleet-wide quantiles, not averages of "
                   "per-instance quantiles; the mean is the sum of observations over their count.")
    if exemplars:
        description += (" The points are exemplars, single requests: with tracing on they open the request's trace "
                        "in Jaeger, otherwise they show its request id, which finds its request-log line.")
    return timeseries(title, description, "s", *targets, width=width)


def overview() -> list[Panel | Row]:
    return [
        Row("Overview"),
        stat("Request rate", "Requests answered per second by all selected instances, whatever their outcome.",
             "reqps", Target(requests(SERVING))),
        stat("Error ratio", "Share of requests that failed on the server side: outcome upstream_error (unreachable, "
             "timed out or broken mid-stream) or a 5xx answer. Cancelled and rejected requests are not errors.",
             "percentunit", Target(error_ratio(SERVING)),
             thresholds=[("green", None), ("orange", 0.01), ("red", 0.05)]),
        stat("In flight", "Requests being relayed right now, summed over the selected instances (not split by model).",
             "short", Target(f"sum({sel('infermeter_requests_in_flight', ENDPOINT)})"), decimals=0),
        stat("TTFT p50", "Median time from request arrival at the proxy to the first token event, fleet-wide.",
             "s", Target(quantile(0.5, "infermeter_time_to_first_token_seconds", SERVING))),
        stat("TPOT p50", "Median time per output token: (last token - first token) / (output tokens - 1), per "
             "stream, fleet-wide.", "s", Target(quantile(0.5, "infermeter_time_per_output_token_seconds", SERVING))),
        stat("Output tokens/s", "Generated tokens per second summed over the selected instances (server-reported "
             "counts where available, else counted token events).", "suffix:tok/s",
             Target(f"sum({rate('infermeter_tokens_total', SERVING, OUTPUT)})")),
    ]


def traffic() -> list[Panel | Row]:
    return [
        Row("Traffic"),
        timeseries("Requests by outcome", "Requests per second by how they ended: completed (finished normally, "
                   "whatever the status), cancelled (the client left first), upstream_error (unreachable, timed "
                   "out or broken mid-stream), rejected (refused by the proxy, e.g. body too large).", "reqps",
                   Target(requests(SERVING, "outcome"), "{{outcome}}"), stack=True),
        timeseries("Requests by status code", "Requests per second by the HTTP status the proxy sent to the client.",
                   "reqps", Target(requests(SERVING, "code"), "{{code}}"), stack=True),
        timeseries("Error ratio by endpoint", "Share of requests per endpoint that failed on the server side "
                   "(outcome upstream_error, or a 5xx answer), and over all endpoints.", "percentunit",
                   Target(error_ratio(SERVING, "endpoint"), "{{endpoint}}"), Target(error_ratio(SERVING), "all"),
                   max_value=1),
        timeseries("Requests in flight", "Requests being relayed at scrape time, per endpoint, summed over the "
                   "selected instances. The gauge has no model label.", "short",
                   Target(f"sum by (endpoint) ({sel('infermeter_requests_in_flight', ENDPOINT)})", "{{endpoint}}"),
                   stack=True),
    ]


def latencies() -> list[Panel | Row]:
    return [
        Row("Latency"),
        latency("Time to first token (TTFT)", "infermeter_time_to_first_token_seconds",
                "Time from request arrival at the proxy to the first token event (text, reasoning, tool-call "
                "arguments or refusal), for streams with at least one token.", exemplars=True),
        latency("Time between tokens (TBT)", "infermeter_time_between_tokens_seconds",
                "Gap between consecutive token events of a stream, one observation per gap: the chunk-level "
                "latency a user sees."),
        latency("Time per output token (TPOT)", "infermeter_time_per_output_token_seconds",
                "(time of last token - time of first token) / (output tokens - 1), per stream with at least two "
                "output tokens, as genai-perf defines it.", exemplars=True),
        latency("Request duration", "infermeter_request_duration_seconds",
                "Time from request arrival to the last byte handed to the client (or the end of an abandoned "
                "stream), for every request, streaming or not.", exemplars=True),
        latency("Upstream response headers", "infermeter_upstream_response_headers_seconds",
                "Time from request arrival to the upstream's response headers: queueing and prefill before the "
                "server answers. Not split by model.", filters=ENDPOINT),
        timeseries("Output tokens per second per request",
                   "Each request's output tokens / its duration (arrival to last byte), for requests with output. "
                   "p10 shows the slowest streams; p50 the typical one. Fleet-wide quantiles.", "suffix:tok/s",
                   *(Target(quantile(q, "infermeter_output_tokens_per_second", SERVING), f"p{round(q * 100)}")
                     for q in (0.1, 0.5, 0.9)),
                   Target(mean("infermeter_output_tokens_per_second", SERVING), "mean")),
    ]


def tokens() -> list[Panel | Row]:
    per_type = f"sum by (type) ({rate('infermeter_tokens_total', SERVING)})"
    per_model = f"sum by (model) ({rate('infermeter_tokens_total', SERVING, OUTPUT)})"

    def per_request(kind: str) -> str:
        buckets = increase("infermeter_request_tokens_bucket", SERVING, f'type="{kind}"', "$__rate_interval")
        return f"sum by (le) ({buckets})"

    return [
        Row("Tokens"),
        timeseries("Token throughput", "Input (prompt) and output (generated) tokens per second, summed over the "
                   "selected instances. Counts come from the server's usage report where it sends one, else output "
                   "tokens are counted as token events (see Estimated-count share).", "suffix:tok/s",
                   Target(per_type, "{{type}}")),
        timeseries("Output tokens per second by model", "Generated tokens per second per model, summed over the "
                   "selected instances.", "suffix:tok/s", Target(per_model, "{{model}}"), stack=True),
        heatmap("Input tokens per request", "How many prompt tokens requests carry: each cell counts requests "
                "whose input token count fell in that bucket during the interval.", "short",
                Target(per_request("input"))),
        heatmap("Output tokens per request", "How many tokens responses generate: each cell counts requests whose "
                "output token count fell in that bucket during the interval.", "short",
                Target(per_request("output"))),
    ]


def completion() -> list[Panel | Row]:
    estimated = f"sum by (endpoint) ({rate('infermeter_token_counts_estimated_total', ENDPOINT)})"
    all_requests = requests(ENDPOINT, "endpoint")
    return [
        Row("Completion and counting"),
        timeseries("Finish reasons", "Requests per second by why generation ended: stop, length (hit max tokens), "
                   "tool_calls, content_filter, error or other.", "reqps",
                   Target(f"sum by (reason) ({rate('infermeter_finish_reasons_total', SERVING)})", "{{reason}}"),
                   stack=True),
        timeseries("Estimated-count share", "Share of requests per endpoint whose output tokens were counted from "
                   "token events because the server sent no usage (ask for stream_options.include_usage, or run "
                   "the proxy with --inject-usage). 0 means every count is exact. Not split by model.",
                   "percentunit", Target(zero_filled_ratio(estimated, all_requests), "{{endpoint}}"),
                   width=6, max_value=1),
        timeseries("Stream parse errors", "Response events per second the proxy could not parse. The bytes still "
                   "reach the client unchanged; only the timing of those events is lost. Not split by model.",
                   "cps", Target(f"sum by (endpoint) ({rate('infermeter_stream_parse_errors_total', ENDPOINT)})",
                                 "{{endpoint}}"), width=6),
    ]


def slo() -> list[Panel | Row]:
    met = f"sum({increase('infermeter_slo_requests_total', SERVING, MET)})"
    total = f"sum({increase('infermeter_slo_requests_total', SERVING)})"
    met_rate = f"sum by (endpoint, model) ({rate('infermeter_slo_requests_total', SERVING, MET)})"
    total_rate = f"sum by (endpoint, model) ({rate('infermeter_slo_requests_total', SERVING)})"

    def within(histogram: str, variable: str) -> str:
        bucket = f"sum({rate(histogram + '_bucket', SERVING, le_matcher(variable))})"
        return f"{bucket} / sum({rate(histogram + '_count', SERVING)})"

    burn = "{{job}} {{window}}"
    return [
        Row("Service level objectives"),
        stat("SLO attainment", f"Share of finished requests over the dashboard's time range ({RANGE}) that met every "
             "SLO the proxy was started with (--slo-ttft, --slo-tpot, --slo-request-duration). No data means no SLO "
             "is set.", "percentunit", Target(zero_filled_ratio(met, total)), width=6, height=8, graph=False,
             thresholds=[("red", None), ("orange", 0.95), ("green", 0.99)]),
        timeseries("SLO attainment by endpoint and model", "Share of finished requests meeting every configured "
                   "SLO, per endpoint and model.", "percentunit",
                   Target(zero_filled_ratio(met_rate, total_rate), "{{endpoint}} {{model}}"), width=9, max_value=1),
        timeseries("Share within threshold", "Per dimension, the share of observations at or under the threshold "
                   "set in the dashboard's SLO variables, read from the histogram bucket of that bound. The proxy "
                   "adds its --slo-* thresholds to the buckets; another value works only if it is a bucket bound "
                   "(see DESIGN.md), else the line is empty.", "percentunit",
                   Target(within("infermeter_time_to_first_token_seconds", "slo_ttft"), "TTFT <= ${slo_ttft}s"),
                   Target(within("infermeter_time_per_output_token_seconds", "slo_tpot"), "TPOT <= ${slo_tpot}s"),
                   Target(within("infermeter_request_duration_seconds", "slo_duration"),
                          "duration <= ${slo_duration}s"), width=9, max_value=1),
        timeseries("Error budget burn rate", "How fast each job spends its SLO error budget (objective 99%: a burn "
                   "rate of 1 spends it in exactly the SLO window; 14.4 over 1 h pages). Read from the recording "
                   "rules job:infermeter_slo_missed:ratio_rate5m and _rate1h, so only the job filter applies.",
                   "short", *(Target(f'label_replace(job:infermeter_slo_missed:ratio_rate{w}{{job=~"$job"}} / 0.01, '
                                     f'"window", "{w}", "", "")', burn) for w in ("5m", "1h")), width=24),
    ]


def variables() -> list[VariableModel]:
    return [
        *request_variables(),
        textbox_variable("slo_ttft", "TTFT SLO (s)", "0.5", "Same value as the proxy's --slo-ttft"),
        textbox_variable("slo_tpot", "TPOT SLO (s)", "0.05", "Same value as the proxy's --slo-tpot"),
        textbox_variable("slo_duration", "Duration SLO (s)", "10", "Same value as the proxy's --slo-request-duration"),
    ]


def build() -> Dashboard:
    items = [*overview(), *traffic(), *latencies(), *tokens(), *completion(), *slo(), *quality.rows()]
    return dashboard("infermeter-serving", "infermeter / Serving",
                     "What clients of the LLM server experience, measured by the infermeter sidecar: request rates "
                     "and errors, TTFT, TBT, TPOT, token throughput, finish reasons, SLO attainment, and the "
                     "answers' quality: response checks and a judge's scores.",
                     items, variables())
