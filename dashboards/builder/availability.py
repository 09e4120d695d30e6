"""The Availability dashboard: is the upstream up, is the proxy up, do requests succeed."""

from __future__ import annotations

from dashboards.builder.model import (
    UP_DOWN,
    Dashboard,
    Panel,
    Row,
    Target,
    dashboard,
    request_variables,
    stat,
    state_timeline,
    table,
    timeseries,
)
from dashboards.builder.promql import (
    HOST,
    RANGE,
    SERVING,
    error_ratio,
    increase,
    quantile,
    rate,
    sel,
)

SUCCESS = 'result="success"'
AVAILABILITY = [("red", None), ("orange", 0.99), ("green", 0.999)]


def upstream() -> list[Panel | Row]:
    up = sel("infermeter_upstream_up", HOST)
    probes_ok = f"sum({increase('infermeter_upstream_probes_total', HOST, SUCCESS)})"
    probes = f"sum({increase('infermeter_upstream_probes_total', HOST)})"
    probe = "infermeter_upstream_probe_duration_seconds"
    return [
        Row("Upstream"),
        stat("Upstream up", "Whether each sidecar's last health probe of its upstream succeeded.", "none",
             Target(f"max by (instance) ({up})", "{{instance}}"), mappings=UP_DOWN, width=6, graph=False,
             thresholds=[("red", None), ("green", 1)]),
        stat("Upstream availability", f"Share of the dashboard's time range ({RANGE}) during which the upstream "
             "answered its probe, averaged over the selected instances: avg_over_time of infermeter_upstream_up.",
             "percentunit", Target(f"avg(avg_over_time({up}[{RANGE}]))"), width=6, graph=False,
             thresholds=AVAILABILITY, decimals=3),
        stat("Probe success ratio", "Successful probes / all probes over the dashboard's time range, over the "
             "selected instances.", "percentunit", Target(f"{probes_ok} / {probes}"), width=6, graph=False,
             thresholds=AVAILABILITY, decimals=3),
        stat("Upstream uptime", "Time since each upstream last came up (its probe started succeeding); 0 while down.",
             "s", Target(f"max by (instance) ({sel('infermeter_upstream_uptime_seconds', HOST)})", "{{instance}}"),
             width=6, graph=False),
        state_timeline("Upstream up over time", "Probe result per instance over time: a red band is an outage as "
                       "the sidecar saw it.", Target(f"max by (instance) ({up})", "{{instance}}"), mappings=UP_DOWN),
        timeseries("Probe latency", "Health-probe round trip at p50 and p99 (buckets summed over the selected "
                   "instances before histogram_quantile) and mean. A rising probe time is an early sign of an "
                   "overloaded server.", "s",
                   Target(quantile(0.5, probe, HOST), "p50"), Target(quantile(0.99, probe, HOST), "p99"),
                   Target(f"sum({rate(probe + '_sum', HOST)}) / sum({rate(probe + '_count', HOST)})", "mean")),
        timeseries("Probes by result", "Health probes per second by result, summed over the selected instances.",
                   "reqps", Target(f"sum by (result) ({rate('infermeter_upstream_probes_total', HOST)})", "{{result}}"),
                   stack=True),
    ]


def requests() -> list[Panel | Row]:
    window = RANGE
    return [
        Row("Requests"),
        stat("Request success ratio", f"Share of requests over the dashboard's time range ({RANGE}) that did not "
             "fail on the server side (outcome upstream_error or a 5xx answer); follows the endpoint and model "
             "filters.", "percentunit", Target(f"1 - ({error_ratio(SERVING, window=window)})"), width=6,
             height=8, graph=False, thresholds=AVAILABILITY, decimals=3),
        timeseries("Request success ratio by endpoint", "Share of requests per endpoint that did not fail on the "
                   "server side, over time.", "percentunit",
                   Target(f"1 - ({error_ratio(SERVING, 'endpoint')})", "{{endpoint}}"), width=18, max_value=1),
    ]


def proxy() -> list[Panel | Row]:
    restarts = f"sum by (instance) (changes({sel('infermeter_upstream_process_start_time_seconds', HOST)}[{RANGE}]))"
    return [
        Row("Proxy"),
        stat("Proxy scraped", "Whether Prometheus could scrape each sidecar's /metrics (the up series).", "none",
             Target(f"max by (instance) ({sel('up', HOST)})", "{{instance}}"), mappings=UP_DOWN, width=6,
             graph=False, thresholds=[("red", None), ("green", 1)]),
        stat("Proxy uptime", "Time since each sidecar process started (process_start_time_seconds).", "s",
             Target(f"time() - max by (instance) ({sel('process_start_time_seconds', HOST)})", "{{instance}}"),
             width=6, graph=False),
        stat("Upstream process restarts", "How often the upstream server process was replaced during the "
             "dashboard's time range (changes of its start time), per instance. Needs the process to be known "
             "(local upstream or --upstream-pid).", "short", Target(restarts, "{{instance}}"), width=6, graph=False,
             thresholds=[("green", None), ("orange", 1)]),
        table("Build version", "How many selected sidecars run each infermeter version.",
              Target(f"count by (version) ({sel('infermeter_build_info', HOST)})"), hide=("Time",), width=6),
    ]


def build() -> Dashboard:
    return dashboard("infermeter-availability", "infermeter / Availability",
                     "Whether the LLM server and its sidecars are up: upstream probes, availability over the range, "
                     "request success ratio, proxy uptime and build versions.",
                     [*upstream(), *requests(), *proxy()], request_variables())
