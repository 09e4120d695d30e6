"""The simulator's own ``/metrics``, in vLLM's vocabulary, from its real scheduler state.

A real engine exports its scheduler's view beside what the proxy sees; the demo needs
one with no GPU, so the simulator speaks vLLM's names (v1 engine, 0.10 line: the names
dashboards/prometheus/rules/engines.yml maps). Everything is read from what the
simulator really does:

- running and waiting: requests holding a slot, and requests queued for one (with
  ``--max-concurrency``; without a limit nothing ever waits);
- KV-cache usage: the tokens the running requests reserve (prompt + planned output, as
  an engine reserves blocks for a sequence) over a pool of ``KV_POOL_TOKENS``;
- prefix cache: every prompt's tokens count as queries, and the tokens the engine's one
  prompt cache (residency.PromptCache) served count as hits: the same figure each
  response reports as ``cached_tokens``, so the two views of the cache agree;
- preemptions: the simulator never preempts, so the counter exists and stays 0;
- queue time (arrival to slot) and time to first token (arrival to the first token
  sent), observed per request into histograms with vLLM's buckets.

Per request this costs two histogram observations and one dict lookup; nothing per token.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence

from prometheus_client import CollectorRegistry, Counter, Histogram, generate_latest
from prometheus_client.metrics_core import GaugeMetricFamily, Metric

from proxy.simulator.job import Job
from proxy.simulator.stats import SimStats

CONTENT_TYPE = b"text/plain; version=0.0.4; charset=utf-8"
KV_POOL_TOKENS = 4096
# vLLM's own bucket boundaries (vllm/v1/metrics/loggers.py).
TTFT_BUCKETS = (0.001, 0.005, 0.01, 0.02, 0.04, 0.06, 0.08, 0.1, 0.25, 0.5, 0.75, 1.0, 2.5, 5.0, 7.5, 10.0,
                20.0, 40.0, 80.0, 160.0, 640.0, 2560.0)
REQUEST_LATENCY_BUCKETS = (0.3, 0.5, 0.8, 1.0, 1.5, 2.0, 2.5, 5.0, 10.0, 15.0, 20.0, 30.0, 40.0, 50.0, 60.0,
                           120.0, 240.0, 480.0, 960.0, 1920.0, 7680.0)
LABELS = ("model_name", "engine")


class EngineMetrics:
    """Filled by the engine at two points of a request: it got a slot, it let it go."""

    def __init__(self, model: str, stats: SimStats) -> None:
        self.stats = stats
        self.registry = CollectorRegistry()
        self._running: dict[int, int] = {}  # id(job) -> tokens it reserves
        values = (model, "0")
        self.label_values = values
        self._queries = Counter("vllm:prefix_cache_queries", "Prefix cache queries, in terms of number of queried "
                                "tokens.", LABELS, registry=self.registry).labels(*values)
        self._hits = Counter("vllm:prefix_cache_hits", "Prefix cache hits, in terms of number of cached tokens.",
                             LABELS, registry=self.registry).labels(*values)
        # Exported so the series exists; the simulator never preempts, so it stays 0.
        self._preemptions = Counter("vllm:num_preemptions", "Cumulative number of preemption from the engine.",
                                    LABELS, registry=self.registry).labels(*values)
        self._ttft = Histogram("vllm:time_to_first_token_seconds", "Histogram of time to first token in seconds.",
                               LABELS, registry=self.registry, buckets=TTFT_BUCKETS).labels(*values)
        self._queue = Histogram("vllm:request_queue_time_seconds", "Histogram of time spent in WAITING phase for "
                                "request.", LABELS, registry=self.registry,
                                buckets=REQUEST_LATENCY_BUCKETS).labels(*values)
        self.registry.register(_SchedulerCollector(self))

    def started(self, job: Job) -> None:
        """The request got a slot: it reserves its tokens and its prompt is looked up."""
        self._running[id(job)] = job.input_tokens + job.output_tokens
        self._queries.inc(job.input_tokens)
        if job.cached_tokens:
            self._hits.inc(job.cached_tokens)

    def ended(self, job: Job) -> None:
        """The request gave its slot back, finished or cancelled."""
        self._running.pop(id(job), None)
        self._queue.observe(max(0.0, job.t_start - job.t_arrival))
        if job.t_first:
            self._ttft.observe(max(0.0, job.t_first - job.t_arrival))

    @property
    def running(self) -> int:
        return len(self._running)

    @property
    def kv_cache_usage(self) -> float:
        return min(1.0, sum(self._running.values()) / KV_POOL_TOKENS)

    def render(self) -> bytes:
        return generate_latest(self.registry)


class _SchedulerCollector:
    """The gauges, read from the scheduler's state when scraped."""

    def __init__(self, metrics: EngineMetrics) -> None:
        self._metrics = metrics

    def describe(self) -> Sequence[Metric]:
        return _gauges()

    def collect(self) -> Iterable[Metric]:
        metrics = self._metrics
        running, waiting, usage = _gauges()
        labels = list(metrics.label_values)
        running.add_metric(labels, float(metrics.running))
        waiting.add_metric(labels, float(metrics.stats.queued))
        usage.add_metric(labels, metrics.kv_cache_usage)
        return [running, waiting, usage]


def _gauges() -> tuple[GaugeMetricFamily, GaugeMetricFamily, GaugeMetricFamily]:
    return (
        GaugeMetricFamily("vllm:num_requests_running", "Number of requests in model execution batches.",
                          labels=LABELS),
        GaugeMetricFamily("vllm:num_requests_waiting", "Number of requests waiting to be processed.", labels=LABELS),
        GaugeMetricFamily("vllm:kv_cache_usage_perc", "KV-cache usage. 1 means 100 percent usage.", labels=LABELS),
    )
