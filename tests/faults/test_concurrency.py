"""500 concurrent streams through one relay process: every one whole, nothing left behind."""

from __future__ import annotations

import asyncio

import orjson
import pytest

from proxy.simulator.app import create_app as create_simulator
from proxy.simulator.config import SimConfig
from tests.faults.probes import open_fds
from tests.support.wait import eventually
from tests.support.metrics import scrape
from tests.support.servers import ChildProcess, ThreadServer, free_port

STREAMS = 500
TOKENS = 20
MARKER = b'"delta":{"content":'


async def _one(port: int, request: bytes) -> bytes:
    reader, writer = await asyncio.open_connection("127.0.0.1", port)
    try:
        writer.write(request)
        return await reader.read(-1)
    finally:
        writer.close()


async def _all(port: int) -> list[bytes | BaseException]:
    body = orjson.dumps({"model": "m", "messages": [{"role": "user", "content": "hi"}], "stream": True})
    # A long first token keeps all of them open at once before any finishes.
    request = (f"POST /v1/chat/completions HTTP/1.1\r\nHost: 127.0.0.1:{port}\r\nContent-Type: application/json\r\n"
               f"Connection: close\r\nx-sim-ttft: 1.5\r\nx-sim-tbt: 0.02\r\nx-sim-output-tokens: {TOKENS}\r\n"
               f"Content-Length: {len(body)}\r\n\r\n").encode() + body
    return await asyncio.gather(*(_one(port, request) for _ in range(STREAMS)), return_exceptions=True)


@pytest.mark.timeout(90)
def test_500_concurrent_streams_through_one_process() -> None:
    sim_app = create_simulator(SimConfig(gc_freeze=False))
    # A short keep-alive: the relay's pooled connections close soon after, so its fds
    # can be seen to return to where they were.
    with ThreadServer(sim_app, timeout_keep_alive=1) as sim:
        port = free_port()
        with ChildProcess(["serve", "--upstream", sim.url, "--port", str(port), "--collectors", "none",
                           "--log-level", "warning"], port) as proxy:
            assert scrape(proxy.url).get("infermeter_requests_in_flight") == 0
            baseline = open_fds(proxy.pid)
            results = asyncio.run(_all(port))
            errors = [r for r in results if isinstance(r, BaseException)]
            assert not errors, errors[:3]
            bodies = [r for r in results if isinstance(r, bytes)]
            assert all(b.startswith(b"HTTP/1.1 200") for b in bodies)
            assert all(b.count(MARKER) == TOKENS and b"data: [DONE]" in b for b in bodies)
            assert sim_app.stats.max_active == STREAMS
            m = scrape(proxy.url)
            assert m.get("infermeter_requests_total", code="200", outcome="completed") == STREAMS
            assert m.get("infermeter_requests_in_flight") == 0
            assert m.get("infermeter_time_to_first_token_seconds_count") == STREAMS
            assert eventually(lambda: open_fds(proxy.pid) <= baseline, timeout=10), \
                f"relay holds {open_fds(proxy.pid)} fds, {baseline} before"
