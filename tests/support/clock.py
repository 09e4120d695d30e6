"""A server whose event-loop clock the test drives: timers fire exactly when the test
moves the clock past them, however loaded the machine, so timing follows the schedule
to the microsecond and a test can assert it exactly.

``ThreadServer(app, loop=DRIVEN)`` runs uvicorn on a ``DrivenLoop`` (uvicorn takes a
loop factory by import string); ``driven(server)`` is that loop. Only the loop's clock is
held: sockets are real. ``release()`` lets the clock run with real time again, so the
server's own ticks (uvicorn checks for shutdown every 0.1 s) go on: ``driving`` does it
on the way out.
"""

from __future__ import annotations

import asyncio
import contextlib
import time
from collections.abc import Iterator

from tests.support.servers import ThreadServer

DRIVEN = "tests.support.clock:DrivenLoop"


class DrivenLoop(asyncio.SelectorEventLoop):
    def __init__(self) -> None:
        super().__init__()
        self._now = time.monotonic()
        self._free_since: float | None = None

    def time(self) -> float:
        if self._free_since is None:
            return self._now
        return self._now + time.monotonic() - self._free_since

    def advance_to(self, when: float) -> None:
        """Move the clock to ``when`` (from the test's thread) and let the loop run what came due."""
        async def step() -> None:
            self._now = max(self._now, when)
            # Due timers run on the next pass, what they wake on the one after: a few passes.
            for _ in range(8):
                await asyncio.sleep(0)

        asyncio.run_coroutine_threadsafe(step(), self).result(timeout=10)

    def release(self) -> None:
        """From now on the clock runs with real time, from where the test left it."""
        def free() -> None:
            if self._free_since is None:
                self._free_since = time.monotonic()

        self.call_soon_threadsafe(free)


def driven(server: ThreadServer) -> DrivenLoop:
    loop = server.server.servers[0].get_loop()
    assert isinstance(loop, DrivenLoop), "start the server with loop=DRIVEN"
    return loop


@contextlib.contextmanager
def driving(server: ThreadServer) -> Iterator[DrivenLoop]:
    """``server`` started on a driven clock; its clock released before it is stopped."""
    with server:
        loop = driven(server)
        try:
            yield loop
        finally:
            loop.release()
