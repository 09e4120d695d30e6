"""Token timing as a client on the loopback sees it: TTFT, gaps, no drift, queueing, flat out.

Tolerances hold on a loaded 2-core machine; the simulator itself is accurate to about a
millisecond (uvloop's timer resolution).
"""

from __future__ import annotations

import asyncio
import statistics
import time
from typing import Any

import httpx
import pytest


# Marks a chat chunk that carries a token; the role-only chunk's delta starts with "role".
TOKEN = b'"delta":{"content":"'
CHAT = {"messages": [{"role": "user", "content": "hi"}], "stream": True}


def timed_stream(url: str, body: dict[str, Any], headers: dict[str, str] | None = None) -> list[tuple[float, bytes]]:
    """(seconds since the request was sent, chunk) for every chunk of a streamed reply."""
    stamps: list[tuple[float, bytes]] = []
    with httpx.Client(timeout=30) as client:
        start = time.perf_counter()
        with client.stream("POST", url, json=body, headers=headers or {}) as reply:
            for chunk in reply.iter_raw():
                stamps.append((time.perf_counter() - start, chunk))
    return stamps


def token_times(stamps: list[tuple[float, bytes]], marker: bytes = TOKEN) -> list[float]:
    """One arrival time per token event (several events in one chunk share its time)."""
    return [t for t, chunk in stamps for _ in range(chunk.count(marker))]


def test_ttft_and_gaps(simulator: Any) -> None:
    sim = simulator(ttft=0.2, tbt=0.02, output_tokens=30)
    stamps = timed_stream(sim.url + "/v1/chat/completions", CHAT)
    times = token_times(stamps)
    assert len(times) == 30
    assert 0.19 <= times[0] <= 0.3
    gaps = [b - a for a, b in zip(times, times[1:])]
    assert abs(statistics.median(gaps) - 0.02) <= 0.008
    # Absolute deadlines: the last token lands on ttft + 29 * tbt, lateness does not add up.
    assert 0.2 + 29 * 0.02 - 0.005 <= times[-1] <= 0.2 + 29 * 0.02 + 0.1
    # Each token is its own event and its own write: most chunks hold exactly one.
    single = sum(1 for _, chunk in stamps if chunk.count(TOKEN) == 1)
    assert single >= 24


def test_header_timing_overrides(simulator: Any) -> None:
    sim = simulator(ttft=2.0, tbt=1.0, output_tokens=30)
    headers = {"x-sim-ttft": "0.05", "x-sim-tbt": "0.01", "x-sim-output-tokens": "10"}
    times = token_times(timed_stream(sim.url + "/v1/chat/completions", CHAT, headers))
    assert len(times) == 10
    assert 0.045 <= times[0] <= 0.15
    assert 0.05 + 9 * 0.01 - 0.005 <= times[-1] <= 0.05 + 9 * 0.01 + 0.1


def test_jitter_varies_gaps_around_tbt(simulator: Any) -> None:
    sim = simulator(ttft=0.0, tbt=0.02, output_tokens=40, jitter=0.5)
    times = token_times(timed_stream(sim.url + "/v1/chat/completions", CHAT))
    gaps = [b - a for a, b in zip(times, times[1:])]
    assert statistics.pstdev(gaps) > 0.003
    assert abs(statistics.mean(gaps) - 0.02) < 0.005


def test_non_stream_answers_when_the_last_token_would(simulator: Any) -> None:
    sim = simulator(ttft=0.1, tbt=0.01, output_tokens=10)
    with httpx.Client(timeout=10) as client:
        client.get(sim.url + "/health")  # connect first: time only the answer
        start = time.perf_counter()
        reply = client.post(sim.url + "/v1/chat/completions", json={"messages": []})
        elapsed = time.perf_counter() - start
    assert reply.json()["usage"]["completion_tokens"] == 10
    assert 0.185 <= elapsed <= 0.35


def test_queue_waits_for_a_slot_fifo(simulator: Any) -> None:
    sim = simulator(ttft=0.1, tbt=0.01, output_tokens=10, max_concurrency=1)

    async def one(client: httpx.AsyncClient, start: float) -> tuple[float, float]:
        first = last = 0.0
        async with client.stream("POST", sim.url + "/v1/chat/completions", json=CHAT) as reply:
            async for chunk in reply.aiter_raw():
                if TOKEN in chunk and not first:
                    first = time.perf_counter() - start
                last = time.perf_counter() - start
        return first, last

    async def main() -> list[tuple[float, float]]:
        async with httpx.AsyncClient(timeout=30) as client:
            start = time.perf_counter()
            tasks = []
            for n in range(3):
                tasks.append(asyncio.create_task(one(client, start)))
                # Let each arrive before the next, so the queue order is known.
                while sim.app.stats.requests < n + 1:
                    await asyncio.sleep(0.002)
            return await asyncio.gather(*tasks)

    (first1, end1), (first2, end2), (first3, end3) = asyncio.run(main())
    assert 0.095 <= first1 <= 0.2
    # A waiting request's TTFT includes the wait: it starts when the previous one ends.
    assert end1 + 0.095 <= first2 <= end1 + 0.2
    assert end2 + 0.095 <= first3 <= end2 + 0.2
    assert first1 < first2 < first3
    stats = sim.app.stats
    assert (stats.max_active, stats.completed, stats.active, stats.queued) == (3, 3, 0, 0)


def test_flat_out_is_fast(simulator: Any) -> None:
    sim = simulator(ttft=0, tbt=0, output_tokens=200)
    start = time.perf_counter()
    times = token_times(timed_stream(sim.url + "/v1/chat/completions", CHAT))
    assert len(times) == 200
    assert time.perf_counter() - start < 1.0


def test_flat_out_streams_share_the_loop(simulator: Any) -> None:
    """A long flat-out stream yields to the loop, so a short one finishes meanwhile."""
    sim = simulator(ttft=0, tbt=0, output_tokens=1)
    ends: dict[str, float] = {}

    async def stream(client: httpx.AsyncClient, name: str, tokens: int) -> None:
        headers = {"x-sim-output-tokens": str(tokens)}
        async with client.stream("POST", sim.url + "/v1/completions", json={"prompt": "x", "stream": True},
                                 headers=headers) as reply:
            async for _ in reply.aiter_raw():
                ends.setdefault(name + "-first", time.perf_counter())
        ends[name] = time.perf_counter()

    async def main() -> None:
        async with httpx.AsyncClient(timeout=30) as client:
            long = asyncio.create_task(stream(client, "long", 40_000))
            while "long-first" not in ends:
                await asyncio.sleep(0.001)
            await stream(client, "short", 3)
            await long

    asyncio.run(main())
    assert ends["short"] < ends["long"]


@pytest.mark.parametrize("count", [20])
def test_many_flat_out_streams_complete(simulator: Any, count: int) -> None:
    sim = simulator(ttft=0, tbt=0, output_tokens=100)

    async def one(client: httpx.AsyncClient) -> int:
        reply = await client.post(sim.url + "/v1/completions", json={"prompt": "x", "stream": True})
        return reply.text.count('"text":"') - 1  # the finish chunk has an empty text

    async def main() -> list[int]:
        async with httpx.AsyncClient(timeout=30) as client:
            return await asyncio.gather(*(one(client) for _ in range(count)))

    assert asyncio.run(main()) == [100] * count
    assert sim.app.stats.max_active >= 2
