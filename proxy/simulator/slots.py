"""Batch slots: at most N requests generate at once, the rest wait first-come first-served."""

from __future__ import annotations

import asyncio
from collections import deque

from proxy.simulator.schedule import Watch


class Slots:
    """A FIFO admission queue; ``limit == 0`` admits everyone at once.

    A released slot is handed straight to the oldest waiter (its future resolves True),
    so a newcomer can never overtake the queue. A waiter whose client leaves is resolved
    False by its ``Watch`` and skipped.
    """

    __slots__ = ("limit", "busy", "_waiters")

    def __init__(self, limit: int) -> None:
        self.limit = limit
        self.busy = 0
        self._waiters: deque[asyncio.Future[bool]] = deque()

    async def acquire(self, watch: Watch) -> bool:
        """Take a slot, waiting in line if all are busy; False if the client left first."""
        if not self.limit or (self.busy < self.limit and not self._waiters):
            self.busy += 1
            return True
        if watch.gone:
            return False
        fut: asyncio.Future[bool] = watch.loop.create_future()
        self._waiters.append(fut)
        watch.waiter = fut
        try:
            return await fut
        except asyncio.CancelledError:
            # Cancelled after the slot was handed over but before we resumed: give it on.
            if fut.done() and not fut.cancelled() and fut.result():
                self.release()
            raise
        finally:
            watch.waiter = None

    def full(self) -> bool:
        """Whether a request arriving now would have to wait."""
        return bool(self.limit) and (self.busy >= self.limit or bool(self._waiters))

    def release(self) -> None:
        while self._waiters:
            fut = self._waiters.popleft()
            if not fut.done():
                fut.set_result(True)
                return
        self.busy -= 1
