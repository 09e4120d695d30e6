"""The per-request floor of a Python relay: infermeter's uvicorn listener with no relay behind it.

The same uvicorn options and edge protocol as ``infermeter serve`` (``proxy.server``),
in front of an ASGI app that reads the request body and answers a fixed chat completion
at once: no upstream, no tap, no metrics. What one request costs this process is what
any relay built on uvicorn pays before it does anything (docs/benchmark.md). Its answer
is not a stream, so compare it in the ``plain`` and ``embeddings`` shapes only.

    python -m bench.floor --port 8010
"""

from __future__ import annotations

import argparse
from collections.abc import Awaitable, Callable, MutableMapping
from typing import Any

import uvicorn

from proxy.server import uvicorn_config

Message = MutableMapping[str, Any]
_WORDS = b"word " * 20
BODY = (b'{"id":"chatcmpl-floor","object":"chat.completion","model":"bench-model","choices":[{"index":0,'
        b'"message":{"role":"assistant","content":"' + _WORDS + b'"},"finish_reason":"stop"}],'
        b'"usage":{"prompt_tokens":3,"completion_tokens":20,"total_tokens":23}}')
HEADERS = [(b"content-type", b"application/json"), (b"content-length", str(len(BODY)).encode())]


async def app(scope: Message, receive: Callable[[], Awaitable[Message]], send: Callable[[Message], Awaitable[None]]) -> None:
    if scope["type"] == "lifespan":
        while True:
            message = await receive()
            await send({"type": message["type"] + ".complete"})
            if message["type"] == "lifespan.shutdown":
                return
    if scope["type"] != "http":
        return
    while (await receive()).get("more_body"):
        pass
    await send({"type": "http.response.start", "status": 200, "headers": HEADERS})
    await send({"type": "http.response.body", "body": BODY})


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--port", type=int, required=True)
    args = parser.parse_args()
    uvicorn.Server(uvicorn_config(app, "127.0.0.1", args.port, "warning")).run()


if __name__ == "__main__":
    main()
