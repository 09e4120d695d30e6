"""The simulator's own /metrics (vLLM's names), over real sockets, against what it does."""

from __future__ import annotations

import threading
from typing import Any

import httpx

from proxy.simulator.engine_metrics import KV_POOL_TOKENS
from tests.support.metrics import Scrape
from tests.support.servers import ThreadServer
from tests.support.wait import poll

MODEL = "infermeter-sim"
LABELS = {"model_name": MODEL, "engine": "0"}


def scrape(sim: ThreadServer) -> dict[str, float]:
    response = httpx.get(sim.url + "/metrics", timeout=5)
    assert response.status_code == 200
    assert response.headers["content-type"].startswith("text/plain; version=0.0.4")
    samples: dict[str, float] = {}
    for (name, label_set), value in Scrape.parse(response.text).samples.items():
        if name.endswith("_created"):
            continue
        labels = dict(label_set)
        extra = {k: v for k, v in labels.items() if k not in LABELS}
        assert {k: labels.get(k) for k in LABELS} == LABELS, (name, labels)
        key = name + ("" if not extra else "{" + ",".join(f"{k}={v}" for k, v in sorted(extra.items())) + "}")
        samples[key] = value
    return samples


def complete(sim: ThreadServer, prompt: str, **headers: str) -> bytes:
    body = {"model": MODEL, "prompt": prompt, "stream": True}
    with httpx.Client(timeout=30) as client, client.stream("POST", sim.url + "/v1/completions", json=body,
                                                           headers=headers) as reply:
        assert reply.status_code == 200
        return b"".join(reply.iter_raw())


def wait_for(sim: ThreadServer, condition: Any, timeout: float = 5.0) -> dict[str, float]:
    return poll(lambda: scrape(sim), condition, timeout)


def test_idle_simulator_exports_the_vllm_series(simulator: Any) -> None:
    samples = scrape(simulator())
    assert samples["vllm:num_requests_running"] == 0
    assert samples["vllm:num_requests_waiting"] == 0
    assert samples["vllm:kv_cache_usage_perc"] == 0
    assert samples["vllm:num_preemptions_total"] == 0
    assert samples["vllm:prefix_cache_queries_total"] == samples["vllm:prefix_cache_hits_total"] == 0
    assert samples["vllm:time_to_first_token_seconds_count"] == 0
    assert samples["vllm:request_queue_time_seconds_count"] == 0


def test_requests_over_the_limit_wait_and_their_queue_time_is_observed(simulator: Any) -> None:
    # One slot, three streams of ~0.6 s each: one runs, two wait.
    sim = simulator(max_concurrency=1, ttft=0.2, tbt=0.04, output_tokens=10)
    threads = [threading.Thread(target=complete, args=(sim, f"prompt number {i}")) for i in range(3)]
    for thread in threads:
        thread.start()
    busy = wait_for(sim, lambda s: s["vllm:num_requests_waiting"] == 2)
    assert busy["vllm:num_requests_waiting"] == 2
    assert busy["vllm:num_requests_running"] == 1
    # The running one reserves its prompt (3 words) and its 10 output tokens.
    assert busy["vllm:kv_cache_usage_perc"] == (3 + 10) / KV_POOL_TOKENS
    for thread in threads:
        thread.join(timeout=30)
    done = wait_for(sim, lambda s: s["vllm:request_queue_time_seconds_count"] == 3)
    assert done["vllm:num_requests_running"] == done["vllm:num_requests_waiting"] == 0
    assert done["vllm:kv_cache_usage_perc"] == 0
    assert done["vllm:request_queue_time_seconds_count"] == 3
    # The first did not wait; the second waited one stream (~0.56 s), the third two.
    assert 1.5 <= done["vllm:request_queue_time_seconds_sum"] < 3.0
    assert done['vllm:request_queue_time_seconds_bucket{le=0.3}'] == 1
    assert done["vllm:time_to_first_token_seconds_count"] == 3
    # TTFT counts from arrival, so it holds the queueing: 0.2 + ~0.76 + ~1.32 s.
    assert 2.0 <= done["vllm:time_to_first_token_seconds_sum"] < 3.5


def test_without_a_limit_nothing_waits(simulator: Any) -> None:
    sim = simulator(ttft=0.3, tbt=0.01, output_tokens=4)
    threads = [threading.Thread(target=complete, args=(sim, "hello")) for _ in range(3)]
    for thread in threads:
        thread.start()
    busy = wait_for(sim, lambda s: s["vllm:num_requests_running"] == 3)
    assert busy["vllm:num_requests_running"] == 3
    assert busy["vllm:num_requests_waiting"] == 0
    for thread in threads:
        thread.join(timeout=30)


def test_a_repeated_prompt_hits_the_prefix_cache(simulator: Any) -> None:
    sim = simulator(ttft=0.0, tbt=0.0, output_tokens=2)
    first = complete(sim, "the same five word prompt")
    repeat = complete(sim, "the same five word prompt")
    complete(sim, "another prompt")
    samples = wait_for(sim, lambda s: s["vllm:time_to_first_token_seconds_count"] == 3)
    assert samples["vllm:prefix_cache_queries_total"] == 5 + 5 + 2
    assert samples["vllm:prefix_cache_hits_total"] == 5
    # One cache: the responses reported what the engine's counters count.
    assert b'"cache_n":0' in first and b'"cache_n":5' in repeat
