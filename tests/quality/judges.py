"""A judge server for tests: an ASGI app answering chat completions the way a judge might.

``mode``: ``verdict`` (a valid verdict with ``score``), ``garbage`` (prose, no JSON),
``out_of_range`` (score 7), ``down`` (500), ``hang`` (never answers), ``no_schema``
(400 to a request with ``response_format``, a verdict otherwise). It keeps the bodies it
was sent.
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable, MutableMapping
from typing import Any

import orjson

from tests.formats.scripted import lifespan

Message = MutableMapping[str, Any]


class FakeJudge:
    def __init__(self, mode: str = "verdict", score: float = 0.8) -> None:
        self.mode = mode
        self.score = score
        self.bodies: list[dict[str, Any]] = []

    async def __call__(self, scope: MutableMapping[str, Any], receive: Callable[[], Awaitable[Message]],
                       send: Callable[[Message], Awaitable[None]]) -> None:
        if scope["type"] == "lifespan":
            await lifespan(receive, send)
            return
        raw = b""
        while True:
            message = await receive()
            raw += message.get("body", b"")
            if not message.get("more_body"):
                break
        body = orjson.loads(raw)
        self.bodies.append(body)
        if self.mode == "hang":
            await asyncio.sleep(3600)
        status, content = 200, orjson.dumps({"score": self.score, "reason": "fine"}).decode()
        if self.mode == "garbage":
            content = "I think the answer is quite good, maybe an eight."
        elif self.mode == "out_of_range":
            content = '{"score": 7, "reason": "out of ten"}'
        elif self.mode == "down":
            status = 500
        elif self.mode == "no_schema" and "response_format" in body:
            status = 400
        answer = orjson.dumps({"id": "j", "object": "chat.completion", "model": body.get("model"),
                               "choices": [{"index": 0, "message": {"role": "assistant", "content": content},
                                            "finish_reason": "stop"}]})
        await send({"type": "http.response.start", "status": status,
                    "headers": [(b"content-type", b"application/json")]})
        await send({"type": "http.response.body", "body": answer})
