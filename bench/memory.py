"""Resident memory of a relay with 0, 100 and 1000 streams held open through it.

Streams are slow (one token a second) so the relay holds them without much CPU; RSS is
read once every stream has its response headers and the relay has settled.
"""

from __future__ import annotations

import asyncio
import time

import orjson

from bench.loadgen import Client, Rec, chat_request
from bench.procs import rss_bytes

SLOW = {"x-sim-ttft": "0", "x-sim-tbt": "1.0", "x-sim-output-tokens": "100000"}


async def _settled_rss(pid: int) -> int:
    await asyncio.sleep(1.0)
    return rss_bytes(pid)


async def rss_profile(host: str, port: int, pid: int, levels: tuple[int, ...] = (0, 100, 1000)) -> dict[str, object]:
    loop = asyncio.get_running_loop()
    client = Client(host, port)
    body = orjson.dumps({"model": "bench-model", "messages": [{"role": "user", "content": "hi"}], "stream": True})
    request = chat_request(host, port, SLOW, body)
    recs: list[Rec] = []
    tasks: list[asyncio.Task[None]] = []
    rss: dict[str, int] = {}
    failed = 0
    for level in levels:
        while len(recs) < level:
            rec = Rec(0, measured=True)
            recs.append(rec)
            tasks.append(loop.create_task(client.stream(request, rec)))
            if len(recs) % 50 == 0:
                await asyncio.sleep(0.02)  # open them steadily, not as one SYN flood
        deadline = time.monotonic() + 30
        while time.monotonic() < deadline and not all(r.t_headers or r.error for r in recs):
            await asyncio.sleep(0.05)
        failed = sum(1 for r in recs if r.error or not r.t_headers)
        rss[str(level)] = await _settled_rss(pid)
    client.abort_all()
    await asyncio.gather(*tasks, return_exceptions=True)
    await asyncio.sleep(2.0)
    rss["after_close"] = rss_bytes(pid)
    per_stream = {}
    if len(levels) >= 3:
        lo, mid, hi = levels[0], levels[1], levels[2]
        per_stream = {
            f"{lo}-{mid}": (rss[str(mid)] - rss[str(lo)]) / max(mid - lo, 1),
            f"{mid}-{hi}": (rss[str(hi)] - rss[str(mid)]) / max(hi - mid, 1),
        }
    return {"rss_bytes": rss, "bytes_per_stream": per_stream, "streams_failed": failed}
