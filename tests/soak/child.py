"""The relay as ``infermeter serve`` runs it, plus one page the soak test reads: its task count.

    python -m tests.soak.child --upstream URL --port P [--max-request-bytes N]

A child process keeps the soak's RSS and fds the relay's own; asyncio tasks are only
visible from inside the loop, hence ``GET /_soak/state``.
"""

from __future__ import annotations

import argparse
import asyncio
import gc
from collections.abc import MutableMapping
from typing import Any

import orjson
import uvicorn

from proxy.app import Sidecar, create_app
from proxy.config import Settings
from proxy.server import configure_logging, uvicorn_config

STATE_PATH = "/_soak/state"


class StateProbe:
    def __init__(self, app: Sidecar) -> None:
        self.app = app

    async def __call__(self, scope: MutableMapping[str, Any], receive: Any, send: Any) -> None:
        if scope["type"] == "http" and scope["path"] == STATE_PATH:
            me = asyncio.current_task()
            body = orjson.dumps({"tasks": sum(1 for t in asyncio.all_tasks() if t is not me),
                                 "gc_objects": len(gc.get_objects())})
            await send({"type": "http.response.start", "status": 200,
                        "headers": [(b"content-type", b"application/json"), (b"content-length", str(len(body)).encode())]})
            await send({"type": "http.response.body", "body": body})
            return
        await self.app(scope, receive, send)


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--upstream", required=True)
    parser.add_argument("--port", type=int, required=True)
    parser.add_argument("--max-request-bytes", type=int, default=256 * 1024)
    args = parser.parse_args()
    settings = Settings(upstream=args.upstream, port=args.port, collectors=(), log_level="warning",
                        max_request_bytes=args.max_request_bytes, read_timeout=30)
    configure_logging(settings.log_level)
    server = uvicorn.Server(uvicorn_config(StateProbe(create_app(settings)), settings.host, settings.port,
                                           settings.log_level))
    server.run()


if __name__ == "__main__":
    main()
