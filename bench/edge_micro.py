"""Micro-benchmark: CPU cost of the edge's request-head checks (proxy/edge.py) per request.

    python bench/edge_micro.py [--requests 20000] [--repeat 7]

Feeds the same realistic request (an OpenAI SDK chat request: its head and a 1 KB body)
to uvicorn's own httptools protocol and to infermeter's bounded EdgeProtocol, side by
side in one run, on a real event loop with a transport that discards what is written.
Each request runs the protocol's whole parse (head, body, ASGI cycle start) and a tiny
ASGI app that answers at once, so the difference is the checks alone. The best of
several runs is reported: the cost without scheduler noise.
"""

from __future__ import annotations

import argparse
import asyncio
import time
from typing import Any

import orjson
import uvicorn
from uvicorn.protocols.http.httptools_impl import HttpToolsProtocol
from uvicorn.server import ServerState

from proxy.config import HeadLimits
from proxy.edge import edge_protocol

BODY = orjson.dumps({"model": "m", "stream": True, "messages": [{"role": "user", "content": "x" * 1000}]})
HEAD = (b"POST /v1/chat/completions HTTP/1.1\r\nHost: 127.0.0.1:8100\r\nAccept-Encoding: gzip, deflate\r\n"
        b"Connection: keep-alive\r\nAccept: application/json\r\nContent-Type: application/json\r\n"
        b"User-Agent: OpenAI/Python 1.99.0\r\nX-Stainless-Lang: python\r\nX-Stainless-Package-Version: 1.99.0\r\n"
        b"X-Stainless-OS: Linux\r\nX-Stainless-Arch: x64\r\nX-Stainless-Runtime: CPython\r\n"
        b"X-Stainless-Runtime-Version: 3.11.7\r\nAuthorization: Bearer sk-0123456789abcdef0123456789abcdef\r\n"
        b"X-Stainless-Async: false\r\nX-Stainless-Retry-Count: 0\r\nContent-Length: %d\r\n\r\n" % len(BODY))
REQUEST = HEAD + BODY


async def _app(scope: Any, receive: Any, send: Any) -> None:
    await receive()
    await send({"type": "http.response.start", "status": 200, "headers": [(b"content-length", b"2")]})
    await send({"type": "http.response.body", "body": b"ok"})


class _Sink(asyncio.Transport):
    def __init__(self) -> None:
        super().__init__()
        self.closing = False

    def write(self, data: Any) -> None:
        pass

    def is_closing(self) -> bool:
        return self.closing

    def close(self) -> None:
        self.closing = True

    def get_extra_info(self, name: str, default: Any = None) -> Any:
        return {"sockname": ("127.0.0.1", 8100), "peername": ("127.0.0.1", 50000)}.get(name, default)

    def pause_reading(self) -> None:
        pass

    def resume_reading(self) -> None:
        pass


async def _run(protocol_class: type[HttpToolsProtocol], requests: int) -> float:
    config = uvicorn.Config(_app, access_log=False, server_header=False, date_header=False, lifespan="off",
                            log_level="warning")
    config.load()
    protocol = protocol_class(config=config, server_state=ServerState(), app_state={})
    protocol.connection_made(_Sink())
    started = time.process_time()
    for _ in range(requests):
        protocol.data_received(REQUEST)
        await asyncio.sleep(0)  # let the ASGI task answer, as on a kept-alive connection
        await asyncio.sleep(0)
    elapsed = time.process_time() - started
    protocol.connection_lost(None)
    return elapsed / requests


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--requests", type=int, default=20000)
    parser.add_argument("--repeat", type=int, default=7)
    args = parser.parse_args()
    edge = edge_protocol(HeadLimits())
    best = {"uvicorn": float("inf"), "edge": float("inf")}
    for _ in range(args.repeat):
        best["uvicorn"] = min(best["uvicorn"], asyncio.run(_run(HttpToolsProtocol, args.requests)))
        best["edge"] = min(best["edge"], asyncio.run(_run(edge, args.requests)))
    print(f"request of {len(REQUEST)} bytes ({len(HEAD)} of head), best of {args.repeat} x {args.requests}")
    for name, seconds in best.items():
        print(f"  {name:8s} {seconds * 1e6:7.2f} us CPU per request")
    print(f"  checks   {(best['edge'] - best['uvicorn']) * 1e6:+7.2f} us per request "
          f"({(best['edge'] / best['uvicorn'] - 1) * 100:+.1f} %)")


if __name__ == "__main__":
    main()
