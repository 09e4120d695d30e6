"""SIGTERM stops ``load`` and ``demo`` the way Ctrl-C does: cleanly, and at once.

``asyncio.run`` turns Ctrl-C into a cancelled main task but installs nothing for SIGTERM.
Outside a container SIGTERM then kills the process with no cleanup (the demo's simulator
child is left running); as a container's PID 1 the kernel drops a signal that has no
handler, so ``docker stop`` waits its 10 s and kills. Both commands wait on an event that
this handler sets. ``serve`` and ``simulate`` need nothing: uvicorn handles SIGTERM.
"""

from __future__ import annotations

import asyncio
import contextlib
import signal
from collections.abc import Iterator


@contextlib.contextmanager
def stop_on_sigterm(stop: asyncio.Event) -> Iterator[None]:
    loop = asyncio.get_running_loop()
    loop.add_signal_handler(signal.SIGTERM, stop.set)
    try:
        yield
    finally:
        loop.remove_signal_handler(signal.SIGTERM)


async def wait_for_stop(stop: asyncio.Event, timeout: float | None) -> None:
    """Return when ``stop`` is set or ``timeout`` seconds have passed (None: no limit)."""
    with contextlib.suppress(asyncio.TimeoutError):
        await asyncio.wait_for(stop.wait(), timeout)
