"""The token schedule and the slot queue, run on a real event loop."""

from __future__ import annotations

import asyncio
import random
import time

import pytest

from proxy.simulator.schedule import Watch, gap_factors, last_token_delay, token_schedule
from proxy.simulator.slots import Slots


def run_schedule(ttft: float, tbt: float, count: int, stall_at: int | None = None,
                 stall: float = 0.0) -> tuple[float, list[float]]:
    """Offsets from start at which each index was yielded; ``stall`` blocks the loop once."""
    async def main() -> list[float]:
        loop = asyncio.get_running_loop()
        watch = Watch(loop)
        start = loop.time()
        out = []
        async for i in token_schedule(watch, start, ttft, tbt, count, gap_factors(0.0, None)):
            out.append(loop.time() - start)
            if i == stall_at:
                time.sleep(stall)
        return out

    began = time.perf_counter()
    offsets = asyncio.run(main())
    return time.perf_counter() - began, offsets


def test_tokens_land_on_absolute_deadlines() -> None:
    _, offsets = run_schedule(0.05, 0.01, 6)
    for i, offset in enumerate(offsets):
        assert 0.05 + i * 0.01 - 0.002 <= offset <= 0.05 + i * 0.01 + 0.05


def test_a_stall_does_not_shift_later_tokens() -> None:
    # Token 1 blocks the loop for 45 ms: tokens 2-5 are overdue and go at once, and
    # token 9 is still due at ttft + 9 * tbt, not 45 ms later.
    _, offsets = run_schedule(0.0, 0.01, 10, stall_at=1, stall=0.045)
    assert offsets[2] >= 0.045
    assert offsets[9] <= 0.09 + 0.05
    assert offsets[9] >= 0.09 - 0.002


def test_zero_tokens_still_wait_for_the_prefill() -> None:
    elapsed, offsets = run_schedule(0.05, 0.01, 0)
    assert offsets == []
    assert elapsed >= 0.045


def test_flat_out_yields_all_tokens_without_sleeping() -> None:
    elapsed, offsets = run_schedule(0.0, 0.0, 10_000)
    assert len(offsets) == 10_000
    assert elapsed < 2.0


def test_gone_client_stops_the_schedule() -> None:
    async def main() -> list[int]:
        loop = asyncio.get_running_loop()
        watch = Watch(loop)
        seen = []
        async for i in token_schedule(watch, loop.time(), 0.0, 0.0, 1000, gap_factors(0.0, None)):
            seen.append(i)
            if i == 40:
                watch.gone = True
        return seen
    assert asyncio.run(main())[-1] == 40


def test_jitter_is_seeded_and_bounded() -> None:
    first = gap_factors(0.3, random.Random(5))
    again = gap_factors(0.3, random.Random(5))
    values = [first() for _ in range(200)]
    assert values == [again() for _ in range(200)]
    assert all(0.7 <= v <= 1.3 for v in values)
    assert len(set(values)) > 100
    assert gap_factors(0.0, random.Random(5))() == 1.0


def test_last_token_delay() -> None:
    one = gap_factors(0.0, None)
    assert last_token_delay(0.2, 0.02, 11, one) == pytest.approx(0.2 + 10 * 0.02)
    assert last_token_delay(0.2, 0.02, 0, one) == pytest.approx(0.2)
    assert last_token_delay(0.0, 0.0, 100, one) == 0.0


def test_slots_are_first_come_first_served() -> None:
    async def main() -> list[int]:
        loop = asyncio.get_running_loop()
        slots = Slots(1)
        order: list[int] = []

        async def worker(n: int) -> None:
            assert await slots.acquire(Watch(loop))
            order.append(n)
            await asyncio.sleep(0.005)
            slots.release()

        tasks = [asyncio.create_task(worker(n)) for n in range(5)]
        await asyncio.sleep(0)
        assert slots.full()
        await asyncio.gather(*tasks)
        assert slots.busy == 0 and not slots.full()
        return order

    assert asyncio.run(main()) == [0, 1, 2, 3, 4]


def test_unlimited_slots_never_wait() -> None:
    async def main() -> None:
        loop = asyncio.get_running_loop()
        slots = Slots(0)
        for _ in range(100):
            assert await slots.acquire(Watch(loop))
        assert not slots.full()
    asyncio.run(main())
