"""Percentiles end to end: a known TTFT schedule through the proxy, a real Prometheus's
``histogram_quantile`` against the percentiles the client itself measured.

The simulator takes each request's TTFT from ``x-sim-ttft``, drawn (seeded) from a
log-normal with median 250 ms and sigma 0.4: p50 250 ms, p90 420 ms, p99 630 ms, a spread
like chat traffic on a GPU, crossing a dozen TTFT buckets. The client times each stream
from sending the request to the first token event. Prometheus scrapes the proxy every
second; the query reads the cumulative buckets at the end, so every request counts (a
``rate()`` over series born mid-range would miss their first scrape's share).

Tolerance: 10 % (DESIGN.md section 6). On this distribution the buckets' own
interpolation error is under 5 %; the rest is room for what the proxy adds to each TTFT
and for client-side scheduling delays on a loaded machine.
"""

from __future__ import annotations

import asyncio
import json
import random
import time
from collections.abc import Iterator
from dataclasses import dataclass

import httpx
import pytest

from tests.metrics.promql import sample_quantile
from tests.stack.prometheus_server import Prometheus, run_prometheus
from tests.support.servers import ChildProcess, free_port

JOB = "infermeter"
MODEL = "e2e-quantiles"
REQUESTS = 300
CONCURRENCY = 24
MEDIAN, SIGMA = 0.25, 0.4
TOLERANCE = 0.10


@dataclass(frozen=True)
class Run:
    prometheus: Prometheus
    client_ttfts: list[float]


async def _one(client: httpx.AsyncClient, ttft: float) -> float:
    body = {"model": MODEL, "prompt": "Once upon a time", "stream": True, "max_tokens": 3}
    started = time.perf_counter()
    first: float | None = None
    async with client.stream("POST", "/v1/completions", json=body, headers={"x-sim-ttft": f"{ttft:.6f}"}) as response:
        assert response.status_code == 200
        buffer = ""
        async for text in response.aiter_text():  # read to the end, as a client would
            if first is not None:
                continue
            buffer += text
            *lines, buffer = buffer.split("\n")
            for line in lines:
                if line.startswith("data:") and line[5:].strip() != "[DONE]":
                    choices = json.loads(line[5:]).get("choices") or [{}]
                    if choices[0].get("text"):
                        first = time.perf_counter() - started
                        break
    assert first is not None, "the stream carried no token"
    return first


async def _drive(url: str, ttfts: list[float]) -> list[float]:
    queue = list(ttfts)
    measured: list[float] = []

    async def worker(client: httpx.AsyncClient) -> None:
        while queue:
            measured.append(await _one(client, queue.pop()))

    limits = httpx.Limits(max_connections=CONCURRENCY)
    async with httpx.AsyncClient(base_url=url, timeout=30, limits=limits) as client:
        await asyncio.gather(*(worker(client) for _ in range(CONCURRENCY)))
    return measured


def _wait_for_count(prometheus: Prometheus, expected: int, timeout: float = 20.0) -> None:
    count = f'sum(infermeter_time_to_first_token_seconds_count{{job="{JOB}",model="{MODEL}"}})'
    held = prometheus.wait(count, lambda v: v == [expected], timeout)
    assert held == [expected], f"Prometheus holds {held} TTFTs, expected {expected}"


@pytest.fixture(scope="module")
def run(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Run]:
    sim_port, proxy_port = free_port(), free_port()
    simulate = ["simulate", "--port", str(sim_port), "--tbt", "0.002", "--output-tokens", "3", "--seed", "7",
                "--log-level", "warning"]
    serve = ["serve", "--upstream", f"http://127.0.0.1:{sim_port}", "--port", str(proxy_port),
             "--log-level", "warning"]
    rng = random.Random(12)
    schedule = [rng.lognormvariate(0.0, SIGMA) * MEDIAN for _ in range(REQUESTS)]
    with ChildProcess(simulate, sim_port, ready_path="/health"), ChildProcess(serve, proxy_port) as proxy, \
            run_prometheus(tmp_path_factory.mktemp("prometheus"), JOB, [f"127.0.0.1:{proxy_port}"], []) as prometheus:
        measured = asyncio.run(_drive(proxy.url, schedule))
        _wait_for_count(prometheus, REQUESTS)
        yield Run(prometheus, sorted(measured))


@pytest.mark.parametrize("q", [0.5, 0.9, 0.99])
def test_prometheus_ttft_quantile_matches_the_client(run: Run, q: float) -> None:
    expr = (f"histogram_quantile({q}, sum by (le) "
            f'(infermeter_time_to_first_token_seconds_bucket{{job="{JOB}",model="{MODEL}"}}))')
    [promql] = run.prometheus.query(expr)
    client = sample_quantile(run.client_ttfts, q)
    assert abs(promql - client) / client <= TOLERANCE, f"p{q * 100:g}: Prometheus {promql:.4f} s, client {client:.4f} s"


def test_client_saw_the_schedule(run: Run) -> None:
    """The client's own p50 is the schedule's median, late by no more than a loaded
    machine's scheduling: the comparison above is against the right thing."""
    assert len(run.client_ttfts) == REQUESTS
    p50 = sample_quantile(run.client_ttfts, 0.5)
    assert MEDIAN * 0.9 <= p50 <= MEDIAN * 1.15, p50
