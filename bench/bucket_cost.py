"""What the bucket ladders cost: the ladders before issue 12 against today's, side by side.

    python bench/bucket_cost.py [--endpoints 5] [--models 4] [--repeat 7]

For a registry built by the proxy's own ``Metrics`` (once with the old ladders patched in,
once as shipped), with every histogram child filled for E endpoints x M models, it
prints: series per (endpoint, model) for each latency histogram; bytes per scrape in the
text format, in OpenMetrics, and in OpenMetrics gzipped as the proxy serves Prometheus
(gzip level 1); time to render one scrape; and the cost of one ``observe()`` on a bound
child and through ``.labels(...)``. Timings are the best of ``--repeat`` runs: the cost
without scheduler noise.
"""

from __future__ import annotations

import argparse
import contextlib
import gzip
import random
import time
from collections.abc import Callable, Iterator

from prometheus_client import CollectorRegistry, Histogram
from prometheus_client.exposition import choose_encoder

from proxy.config import Settings
from proxy.metrics import buckets
from proxy.metrics.definitions import Metrics

# The families as they were before issue 12 (commit 7386991). The phase histogram did not
# exist; had it, it would have shared the TTFT family.
OLD: dict[str, tuple[float, ...]] = {
    "TTFT": (0.001, 0.005, 0.01, 0.02, 0.04, 0.06, 0.08, 0.1, 0.25, 0.5, 0.75, 1, 2, 2.5, 5, 7.5, 10, 15, 20, 30, 60),
    "INTER_TOKEN": (0.001, 0.0025, 0.005, 0.0075, 0.01, 0.015, 0.02, 0.025, 0.03, 0.04, 0.05, 0.075,
                    0.1, 0.15, 0.2, 0.3, 0.5, 0.75, 1, 2.5, 5, 10),
    "REQUEST_DURATION": (0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2, 4, 8, 16, 32, 64, 128, 256, 512),
    "TOKENS_PER_SECOND": (1, 2, 5, 10, 20, 30, 50, 75, 100, 150, 200, 300, 500, 1000, 2000, 5000, 10000),
}
OLD["PHASE"] = OLD["TTFT"]
NEW: dict[str, tuple[float, ...]] = {name: getattr(buckets, name) for name in OLD}

# The encoders the proxy's /metrics picks for a plain client and for Prometheus (which asks
# for OpenMetrics first).
TEXT, _ = choose_encoder("text/plain")
OPENMETRICS, _ = choose_encoder("application/openmetrics-text; version=1.0.0")

ENDPOINTS = ("chat_completions", "completions", "responses", "messages", "ollama_chat", "embeddings",
             "ollama_generate", "tgi_generate", "llamacpp_completion")
# Values for labels other than endpoint and model, where a histogram has them.
OTHER_LABELS = {"stream": ("true", "false"), "type": ("input", "output"),
                "phase": ("queue", "load", "prefill", "decode")}


@contextlib.contextmanager
def ladders(families: dict[str, tuple[float, ...]]) -> Iterator[None]:
    saved = {name: getattr(buckets, name) for name in families}
    try:
        for name, family in families.items():
            setattr(buckets, name, family)
        yield
    finally:
        for name, family in saved.items():
            setattr(buckets, name, family)


def histograms(metrics: Metrics) -> dict[str, Histogram]:
    return {h._name: h for h in vars(metrics).values() if isinstance(h, Histogram)}


def children(histogram: Histogram, endpoints: list[str], models: list[str]) -> Iterator[tuple[str, ...]]:
    names = list(histogram._labelnames)
    combos: list[tuple[str, ...]] = [()]
    for name in names:
        values = {"endpoint": endpoints, "model": models}.get(name) or list(OTHER_LABELS.get(name, ("x",)))
        combos = [(*combo, value) for combo in combos for value in values]
    yield from combos


def build(families: dict[str, tuple[float, ...]], endpoints: list[str], models: list[str]) -> tuple[CollectorRegistry, Metrics]:
    """A proxy registry with every histogram child observed: 50 values spread over its range."""
    registry = CollectorRegistry()
    with ladders(families):
        metrics = Metrics(registry, Settings(slo_ttft=0.5, slo_tpot=0.05, slo_request_duration=10.0))
    rng = random.Random(1)
    for histogram in histograms(metrics).values():
        bounds = histogram._upper_bounds
        middle = (bounds[0] * bounds[-2]) ** 0.5
        for combo in children(histogram, endpoints, models):
            child = histogram.labels(*combo)
            for _ in range(50):
                child.observe(rng.lognormvariate(0.0, 1.5) * middle)
    for endpoint in endpoints:
        for model in models:
            metrics.requests.labels(endpoint, model, "200", "completed").inc(100)
            metrics.tokens.labels(endpoint, model, "output").inc(5000)
    return registry, metrics


def series_per_pair(registry: CollectorRegistry, endpoint: str, model: str) -> dict[str, int]:
    """Series Prometheus stores for one (endpoint, model), per histogram: the buckets with
    +Inf, _sum and _count. (The 0.0.4 text format adds a _created series per child; over
    OpenMetrics, which Prometheus asks for first, it is a timestamp, not a series.)"""
    out: dict[str, int] = {}
    for family in registry.collect():
        if family.type != "histogram":
            continue
        n = sum(1 for s in family.samples if s.labels.get("endpoint") == endpoint and s.labels.get("model") == model
                and not s.name.endswith("_created"))
        if n:
            out[family.name] = n
    return out


def best(fn: Callable[[], None], repeat: int) -> float:
    times = []
    for _ in range(repeat):
        started = time.perf_counter()
        fn()
        times.append(time.perf_counter() - started)
    return min(times)


def observe_ns(bounds: tuple[float, ...], median: float, labelled: bool, repeat: int, n: int = 100_000) -> float:
    """One observe() of log-normal values (sigma 1) around ``median``. prometheus-client
    scans the bounds in order, so the cost grows with the bucket a value lands in."""
    histogram = Histogram("bench", "observe cost", ("endpoint", "model"), buckets=bounds, registry=CollectorRegistry())
    rng = random.Random(2)
    values = [rng.lognormvariate(0.0, 1.0) * median for _ in range(n)]
    bound = histogram.labels("chat_completions", "m")

    def run_bound() -> None:
        for v in values:
            bound.observe(v)

    def run_labels() -> None:
        for v in values:
            histogram.labels("chat_completions", "m").observe(v)

    return best(run_labels if labelled else run_bound, repeat) / n * 1e9


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--endpoints", type=int, default=5)
    parser.add_argument("--models", type=int, default=4)
    parser.add_argument("--repeat", type=int, default=7)
    args = parser.parse_args()
    endpoints = list(ENDPOINTS[:args.endpoints])
    models = [f"model-{i}" for i in range(args.models)]

    print(f"bucket ladders, old (before issue 12) against new; {len(endpoints)} endpoints x {len(models)} models\n")
    print(f"{'family':<20}{'old bounds':>12}{'new bounds':>12}")
    for name in OLD:
        print(f"{name:<20}{len(OLD[name]):>12}{len(NEW[name]):>12}")

    built = {label: build(families, endpoints, models) for label, families in (("old", OLD), ("new", NEW))}
    per_pair = {label: series_per_pair(registry, endpoints[0], models[0]) for label, (registry, _) in built.items()}
    print(f"\n{'series per (endpoint, model)':<52}{'old':>8}{'new':>8}")
    for name in per_pair["new"]:
        print(f"  {name:<50}{per_pair['old'].get(name, 0):>8}{per_pair['new'][name]:>8}")
    print(f"  {'all histograms':<50}{sum(per_pair['old'].values()):>8}{sum(per_pair['new'].values()):>8}")

    print(f"\n{'per scrape':<52}{'old':>10}{'new':>10}")
    rows: dict[str, dict[str, float]] = {}
    for label, (registry, _) in built.items():
        text, om = TEXT(registry), OPENMETRICS(registry)
        rows.setdefault("series in the scrape (OpenMetrics samples)", {})[label] = sum(
            1 for line in om.splitlines() if line and not line.startswith(b"#") and b"_created" not in line)
        rows.setdefault("bytes, text 0.0.4", {})[label] = len(text)
        rows.setdefault("bytes, OpenMetrics", {})[label] = len(om)
        rows.setdefault("bytes, OpenMetrics gzip -1 (what Prometheus gets)", {})[label] = len(gzip.compress(om, 1))
        rows.setdefault("render ms, OpenMetrics + gzip", {})[label] = best(
            lambda: None if gzip.compress(OPENMETRICS(registry), 1) else None, args.repeat) * 1e3
    for row, values in rows.items():
        fmt = "{:>10.1f}" if "ms" in row else "{:>10,.0f}"
        print(f"  {row:<50}" + fmt.format(values["old"]) + fmt.format(values["new"]))

    print(f"\n{'observe(), ns per call':<52}{'old':>10}{'new':>10}")
    for family, median, labelled, row in (
            ("INTER_TOKEN", 0.02, False, "per chunk: TBT (20 ms), bound child"),
            ("TTFT", 0.25, False, "per request: TTFT (250 ms), bound child"),
            ("TTFT", 0.25, True, "per request: TTFT, .labels(...).observe()"),
            ("REQUEST_DURATION", 5.0, False, "per request: duration (5 s), bound child")):
        old = observe_ns(OLD[family], median, labelled, args.repeat)
        new = observe_ns(NEW[family], median, labelled, args.repeat)
        print(f"  {row:<50}{old:>10.0f}{new:>10.0f}")


if __name__ == "__main__":
    main()
