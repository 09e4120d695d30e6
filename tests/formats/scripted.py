"""A scripted upstream: replays fixed response bytes on a fixed schedule, whatever the request.

For what the simulator cannot produce (reasoning and tool-call deltas, unknown event
types, truncated JSON, error events mid-stream). Each step is sent on its own at its
time, measured from the request's arrival as the simulator does (absolute deadlines,
so a late wake-up does not shift the steps after it).
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable, MutableMapping, Sequence
from typing import Any

Message = MutableMapping[str, Any]
Step = tuple[float, bytes]

SSE = b"text/event-stream"
NDJSON = b"application/x-ndjson"


class ScriptedUpstream:
    """An ASGI app answering every request 200 with ``steps`` (seconds after arrival, bytes)."""

    def __init__(self, steps: Sequence[Step], content_type: bytes = SSE) -> None:
        self.steps = tuple(steps)
        self.content_type = content_type
        # Extra response headers (TGI's timing headers, say).
        self.headers: tuple[tuple[bytes, bytes], ...] = ()

    @property
    def body(self) -> bytes:
        return b"".join(data for _, data in self.steps)

    async def __call__(self, scope: MutableMapping[str, Any], receive: Callable[[], Awaitable[Message]],
                       send: Callable[[Message], Awaitable[None]]) -> None:
        if scope["type"] != "http":
            if scope["type"] == "lifespan":
                await lifespan(receive, send)
            return
        loop = asyncio.get_running_loop()
        arrival = loop.time()
        steps, content_type, extra = self.steps, self.content_type, self.headers
        while (await receive()).get("more_body", False):
            pass
        await send({"type": "http.response.start", "status": 200,
                    "headers": [(b"content-type", content_type), (b"cache-control", b"no-cache"), *extra]})
        for at, data in steps:
            delay = arrival + at - loop.time()
            if delay > 0:
                await asyncio.sleep(delay)
            await send({"type": "http.response.body", "body": data, "more_body": True})
        await send({"type": "http.response.body", "body": b"", "more_body": False})


async def lifespan(receive: Callable[[], Awaitable[Message]], send: Callable[[Message], Awaitable[None]]) -> None:
    while True:
        message = await receive()
        if message["type"] == "lifespan.startup":
            await send({"type": "lifespan.startup.complete"})
        elif message["type"] == "lifespan.shutdown":
            await send({"type": "lifespan.shutdown.complete"})
            return


def paced(head: Sequence[bytes], body: Sequence[bytes], tail: Sequence[bytes], ttft: float, tbt: float) -> list[Step]:
    """``head`` at once, ``body[i]`` at ``ttft + i * tbt``, ``tail`` with the last of ``body``.

    Each element is its own step (its own write), so events in ``body`` reach the proxy
    one per chunk, as a model server's tokens do.
    """
    steps: list[Step] = [(0.0, b"".join(head))] if head else []
    at = ttft
    for i, data in enumerate(body):
        at = ttft + i * tbt
        steps.append((at, data))
    if tail:
        steps.append((at, b"".join(tail)))
    return steps
