"""Token timing as a client on the loopback sees it: TTFT, gaps, no drift, queueing, flat out.

Tolerances hold on a loaded 2-core machine; the simulator itself is accurate to about a
millisecond (uvloop's timer resolution). Where a test asserts the schedule exactly, the
simulator runs on a clock the test drives (tests/support/clock.py).
"""

from __future__ import annotations

import asyncio
import concurrent.futures
import statistics
import time
from typing import Any

import httpx
import orjson
import pytest

from proxy.simulator.app import create_app as create_simulator
from proxy.simulator.config import SimConfig
from tests.support.clock import DRIVEN, driving
from tests.support.servers import ThreadServer
from tests.support.wait import eventually


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


def test_header_timing_overrides() -> None:
    """The headers' schedule, not the configured one (2 s, then 1 s a token, 30 tokens),
    exactly: the clock is the test's, moved to the first token's deadline and the last's."""
    headers = {"x-sim-ttft": "0.05", "x-sim-tbt": "0.01", "x-sim-output-tokens": "10"}
    sim = ThreadServer(create_simulator(SimConfig(ttft=2.0, tbt=1.0, output_tokens=30, gc_freeze=False)),
                       loop=DRIVEN)
    with driving(sim) as clock, concurrent.futures.ThreadPoolExecutor(1) as pool:
        arrival = clock.time()
        body = pool.submit(lambda: httpx.post(sim.url + "/v1/chat/completions", json=CHAT, headers=headers,
                                              timeout=30).content)
        assert eventually(lambda: sim.app.stats.active == 1)
        clock.advance_to(arrival + 0.05)
        clock.advance_to(arrival + 0.05 + 9 * 0.01)
        stream = body.result(timeout=10)
    assert stream.count(TOKEN) == 10
    events = [orjson.loads(line[6:]) for line in stream.split(b"\n") if line.startswith(b"data: {")]
    # A token sent before its deadline, or after, would move these off the schedule.
    assert events[-1]["timings"]["prompt_ms"] == pytest.approx(50, abs=1e-6)
    assert events[-1]["timings"]["predicted_ms"] == pytest.approx(90, abs=1e-6)


def test_jitter_varies_gaps_around_tbt(simulator: Any) -> None:
    sim = simulator(ttft=0.0, tbt=0.02, output_tokens=40, jitter=0.5)
    times = token_times(timed_stream(sim.url + "/v1/chat/completions", CHAT))
    gaps = [b - a for a, b in zip(times, times[1:])]
    assert statistics.pstdev(gaps) > 0.003
    assert abs(statistics.mean(gaps) - 0.02) < 0.005


def test_non_stream_answers_when_the_last_token_would() -> None:
    """Not a moment before the last token's deadline, and at it: on a clock the test
    drives, so the answer's own timings follow the schedule exactly on any machine."""
    ttft, tbt, tokens = 0.1, 0.01, 10
    due = ttft + (tokens - 1) * tbt
    sim = ThreadServer(create_simulator(SimConfig(ttft=ttft, tbt=tbt, output_tokens=tokens, gc_freeze=False)),
                       loop=DRIVEN)
    with driving(sim) as clock, concurrent.futures.ThreadPoolExecutor(1) as pool:
        arrival = clock.time()  # the clock stands still until moved: the request arrives at it
        answer = pool.submit(httpx.post, sim.url + "/v1/chat/completions", json={"messages": []}, timeout=30)
        assert eventually(lambda: sim.app.stats.active == 1)
        clock.advance_to(arrival + due - 0.001)
        with pytest.raises(concurrent.futures.TimeoutError):
            answer.result(timeout=0.2)
        clock.advance_to(arrival + due)
        reply = answer.result(timeout=10).json()
    assert reply["usage"]["completion_tokens"] == tokens
    # llama.cpp's timings, on the simulator's clock: the prefill, then the other tokens' gaps.
    assert reply["timings"]["prompt_ms"] == pytest.approx(ttft * 1000, abs=1e-6)
    assert reply["timings"]["predicted_ms"] == pytest.approx((tokens - 1) * tbt * 1000, abs=1e-6)


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
