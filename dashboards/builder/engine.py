"""The Engine dashboard: the LLM server's own view beside the client's (DESIGN.md section 13).

Its engine panels read the normalized engine:* series of dashboards/prometheus/rules/
engines.yml, scraped from the engine's own port (a job of its own, picked by the
engine_job variable); the last row puts the proxy's client-perceived TTFT beside the
phases the server reported per request.
"""

from __future__ import annotations

from dashboards.builder.model import (
    Dashboard,
    Panel,
    Row,
    Target,
    VariableModel,
    dashboard,
    query_variable,
    request_variables,
    timeseries,
)
from dashboards.builder.promql import RATE, SERVING, sel

ENGINE = 'job=~"$engine_job",engine=~"$engine"'
FEEDS_ALL = "Fed by vLLM, SGLang, TGI and llama.cpp (started with --metrics); Ollama has no /metrics, so it is empty."


def engine_sel(record: str) -> str:
    return sel(record, ENGINE)


def engine_rows() -> list[Panel | Row]:
    hits = f"sum by (engine) ({engine_sel('engine:prefix_cache_hits:rate5m')})"
    queries = f"sum by (engine) ({engine_sel('engine:prefix_cache_queries:rate5m')})"

    def mean(histogram: str) -> str:
        return (f"sum by (engine) ({engine_sel(f'engine:{histogram}_sum:rate5m')}) / "
                f"sum by (engine) ({engine_sel(f'engine:{histogram}_count:rate5m')})")

    return [
        Row("Engine (the server's own /metrics)"),
        timeseries("Queue depth", "Requests waiting in the engine's queue for a batch slot, and requests running in "
                   "the batch, summed over every selected engine instance (engine:requests_waiting and "
                   f"engine:requests_running). {FEEDS_ALL} A queue that keeps growing means the server takes in "
                   "more than it can serve.", "short",
                   Target(f"sum by (engine) ({engine_sel('engine:requests_waiting')})", "{{engine}} waiting"),
                   Target(f"sum by (engine) ({engine_sel('engine:requests_running')})", "{{engine}} running")),
        timeseries("KV-cache usage", "Share of the KV cache in use, the fullest instance per engine "
                   "(engine:kv_cache_usage_ratio). Fed by vLLM (kv_cache_usage_perc, gpu_cache_usage_perc before "
                   "0.9), SGLang (token_usage) and llama.cpp builds that still export kv_cache_usage_ratio; TGI and "
                   "current llama.cpp builds export no such gauge, so they are empty. Near 1, requests queue and "
                   "vLLM starts preempting.", "percentunit",
                   Target(f"max by (engine) ({engine_sel('engine:kv_cache_usage_ratio')})", "{{engine}}"),
                   max_value=1),
        timeseries("Prefix-cache hit ratio", "Prompt tokens served from the prefix cache over prompt tokens looked "
                   "up, from counters summed over the selected instances before dividing (never an average of "
                   "hit-rate gauges). Fed by vLLM (prefix_cache_hits/queries), SGLang (cached_tokens/prompt_tokens) "
                   "and llama.cpp (prompt_tokens_cached); TGI exports no cache counters, so it is empty.",
                   "percentunit", Target(f"{hits} / {queries}", "{{engine}}"), max_value=1),
        timeseries("Preemptions", "Running requests preempted (vLLM) or retracted (SGLang) per second, summed over "
                   "the selected instances: each one's KV cache is thrown away and computed again. TGI and "
                   "llama.cpp do not preempt and export nothing here.", "reqps",
                   Target(f"sum by (engine) ({engine_sel('engine:preemptions:rate5m')})", "{{engine}}")),
        timeseries("Engine queue time and TTFT (mean)", "The engine's own per-request histograms, as means over "
                   "5 minutes summed over instances: time waiting for a slot (vLLM request_queue_time, SGLang "
                   "queue_time, TGI request_queue_duration) and time to first token measured inside the server "
                   "(vLLM and SGLang). llama.cpp exports neither histogram.", "s",
                   Target(mean("queue_time_seconds"), "{{engine}} queue"),
                   Target(mean("time_to_first_token_seconds"), "{{engine}} TTFT"), width=24),
    ]


def client_vs_engine() -> list[Panel | Row]:
    phases = 'phase=~"queue|load|prefill"'
    client = (f"sum(rate({sel('infermeter_time_to_first_token_seconds_sum', SERVING)}[{RATE}])) / "
              f"sum(rate({sel('infermeter_time_to_first_token_seconds_count', SERVING)}[{RATE}]))")
    per_phase = (f"sum by (phase) (rate({sel('infermeter_upstream_phase_seconds_sum', SERVING, phases)}[{RATE}])) / "
                 f"sum by (phase) (rate({sel('infermeter_upstream_phase_seconds_count', SERVING, phases)}[{RATE}]))")
    return [
        Row("TTFT: client vs engine"),
        timeseries("TTFT: client vs engine", "Mean time to first token as the client saw it through the proxy "
                   "(infermeter_time_to_first_token_seconds), beside the mean of each phase the server itself "
                   "reported for its requests (infermeter_upstream_phase_seconds: queue from TGI's x-queue-time, "
                   "load from Ollama's load_duration, prefill from llama.cpp's timings.prompt_ms and Ollama's "
                   "prompt_eval_duration), and the difference: time spent outside the engine (network, proxy, "
                   "client) or in phases the server does not report. vLLM and SGLang report no phases per "
                   "request, so for them only the client line shows; their own TTFT is in the panel above.", "s",
                   Target(client, "client TTFT"), Target(per_phase, "engine {{phase}}"),
                   Target(f"{client} - sum({per_phase})", "outside the engine"), width=24),
    ]


def variables() -> list[VariableModel]:
    return [
        *request_variables(),
        query_variable("engine_job", "Engine job", "label_values(engine:requests_running, job)"),
        query_variable("engine", "Engine", 'label_values(engine:requests_running{job=~"$engine_job"}, engine)'),
    ]


def build() -> Dashboard:
    return dashboard("infermeter-engine", "infermeter / Engine",
                     "Inside the LLM server: its queue, KV cache, prefix cache and preemptions from its own /metrics "
                     "(vLLM, SGLang, TGI, llama.cpp, mapped by engines.yml), and the client's TTFT beside the "
                     "phases the server reports.", [*engine_rows(), *client_vs_engine()], variables())
