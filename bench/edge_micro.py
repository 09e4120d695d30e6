"""Micro-benchmark: CPU cost of the edge (proxy/edge/) per request.

    python bench/edge_micro.py [--requests 20000] [--repeat 7] [--base WORKTREE]

Feeds the same realistic request (an OpenAI SDK chat request: its head and a 1 KB body)
to uvicorn's own httptools protocol and to infermeter's bounded EdgeProtocol, side by
side in one run, on a real event loop with a transport that discards what is written.
Each request runs the protocol's whole parse (head, body, ASGI cycle start) and a tiny
ASGI app that answers at once, so the difference is the edge alone. ``--base`` adds the
edge of another checkout (``git worktree add /tmp/base <commit>``) as a third contender:
before and after a change, in the same run. Each contender runs in a process of its
own, in turn, round after round; the best round is reported: the cost without
scheduler noise.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import subprocess
import sys
import time
from pathlib import Path
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


def _one(name: str, requests: int) -> float:
    """Seconds of CPU per request for ``uvicorn`` or ``edge``, in this process."""
    protocol_class = HttpToolsProtocol if name == "uvicorn" else edge_protocol(HeadLimits())
    return asyncio.run(_run(protocol_class, requests))


def _in_child(name: str, requests: int, tree: Path) -> float:
    # The tree's own proxy package comes first on the path: an earlier commit's edge.
    env = {**os.environ, "PYTHONPATH": str(tree)}
    out = subprocess.run([sys.executable, __file__, "--one", name, "--requests", str(requests)], env=env,
                         check=True, capture_output=True, text=True).stdout
    return float(out)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--requests", type=int, default=20000)
    parser.add_argument("--repeat", type=int, default=7)
    parser.add_argument("--base", type=Path, help="a checkout whose edge runs beside this one's, as 'base'")
    parser.add_argument("--one", choices=["uvicorn", "edge"], help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.one:
        print(_one(args.one, args.requests))
        return
    here = Path(__file__).resolve().parents[1]
    trees = {"uvicorn": ("uvicorn", here), "edge": ("edge", here)}
    if args.base is not None:
        trees["base"] = ("edge", args.base.resolve())
    best = dict.fromkeys(trees, float("inf"))
    for _ in range(args.repeat):
        for label, (name, tree) in trees.items():
            best[label] = min(best[label], _in_child(name, args.requests, tree))
    print(f"request of {len(REQUEST)} bytes ({len(HEAD)} of head), best of {args.repeat} x {args.requests}")
    for label, seconds in best.items():
        print(f"  {label:8s} {seconds * 1e6:7.2f} us CPU per request")
    for label in ("base", "edge"):
        if label in best:
            print(f"  {label} - uvicorn {(best[label] - best['uvicorn']) * 1e6:+7.2f} us per request "
                  f"({(best[label] / best['uvicorn'] - 1) * 100:+.1f} %)")
    if "base" in best:
        print(f"  edge - base    {(best['edge'] - best['base']) * 1e6:+7.2f} us per request")


if __name__ == "__main__":
    main()
