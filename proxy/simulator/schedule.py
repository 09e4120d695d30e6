"""When each token goes out, and noticing at once that the client has gone.

Deadlines are absolute: token ``i`` is due at ``start + ttft + i * tbt`` (each gap
jittered), measured on the event loop's clock from the moment the request started
generating. A late wake-up therefore never shifts the tokens after it: lateness does
not accumulate over a long stream.

uvicorn's ``send`` returns silently after the client disconnected, so the only way to
learn of it is ``receive()``. One watcher task per request waits on it and, when the
client goes, wakes whatever the request is waiting on (a token deadline or a queue
slot), so generation stops at once rather than at the next token.
"""

from __future__ import annotations

import asyncio
import random
from collections.abc import AsyncGenerator, Callable
from typing import Any

# Flat out (or running behind), hand the loop over every this many tokens so other
# streams, the disconnect watcher and new connections get their turn.
YIELD_EVERY = 16

Receive = Callable[[], Any]


def _wake(fut: asyncio.Future[bool]) -> None:
    if not fut.done():
        fut.set_result(True)


class Watch:
    """The client's side of one request: gone or not, and what the request waits on."""

    __slots__ = ("loop", "gone", "finished", "waiter", "_task")

    def __init__(self, loop: asyncio.AbstractEventLoop) -> None:
        self.loop = loop
        self.gone = False
        self.finished = False
        # The future the request is blocked on; resolved with False when the client goes.
        self.waiter: asyncio.Future[bool] | None = None
        self._task: asyncio.Task[None] | None = None

    def start(self, receive: Receive) -> None:
        """Watch ``receive`` for ``http.disconnect``; call once the body has been read."""
        self._task = self.loop.create_task(self._watch(receive))

    async def _watch(self, receive: Receive) -> None:
        try:
            while (await receive())["type"] != "http.disconnect":
                pass
        except Exception:  # a server that fails receive() after the client went
            pass
        # uvicorn also reports a disconnect once the response is complete: not a departure.
        if not self.finished:
            self.gone = True
            waiter = self.waiter
            if waiter is not None and not waiter.done():
                waiter.set_result(False)

    def finish(self) -> None:
        """The response is complete (or abandoned): stop watching."""
        self.finished = True
        task = self._task
        if task is not None and not task.done():
            task.cancel()

    async def sleep_until(self, deadline: float) -> bool:
        """Sleep until ``deadline`` on the loop's clock; False if the client went first."""
        if self.gone:
            return False
        fut: asyncio.Future[bool] = self.loop.create_future()
        self.waiter = fut
        handle = self.loop.call_at(deadline, _wake, fut)
        try:
            return await fut
        finally:
            self.waiter = None
            handle.cancel()


def gap_factors(jitter: float, rng: random.Random | None) -> Callable[[], float]:
    """A source of per-gap multipliers: always 1.0 without jitter."""
    if not jitter or rng is None:
        return lambda: 1.0
    low, high = 1.0 - jitter, 1.0 + jitter
    return lambda: rng.uniform(low, high)


async def token_schedule(watch: Watch, start: float, ttft: float, tbt: float, count: int,
                         factor: Callable[[], float]) -> AsyncGenerator[int, None]:
    """Yield token indices 0..count-1, each at its deadline; stop when the client goes.

    With ``count == 0`` it still waits out the time to first token (the prefill), then
    yields nothing.
    """
    loop = watch.loop
    deadline = start + ttft * factor() if ttft else start
    unyielded = 0
    if count == 0:
        if deadline > loop.time():
            await watch.sleep_until(deadline)
        return
    for i in range(count):
        if i and tbt:
            deadline += tbt * factor()
        if deadline > loop.time():
            if not await watch.sleep_until(deadline):
                return
            unyielded = 0
        else:
            unyielded += 1
            if unyielded >= YIELD_EVERY:
                unyielded = 0
                await asyncio.sleep(0)
        if watch.gone:
            return
        yield i


def last_token_delay(ttft: float, tbt: float, count: int, factor: Callable[[], float]) -> float:
    """Seconds from start to the last token: when a non-streaming answer is ready."""
    delay = ttft * factor() if ttft else 0.0
    if tbt:
        for _ in range(count - 1):
            delay += tbt * factor()
    return delay
