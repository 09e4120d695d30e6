"""Soak: thousands of mixed streams with random cancellations through a child-process relay.

``INFERMETER_SOAK_SECONDS`` sets the length (60 by default, what CI runs). After a
warm-up the load pauses and the relay's RSS, open fds, asyncio tasks and in-flight gauge
are taken as the baseline; after the soak they must all come back to it.
"""

from __future__ import annotations

import asyncio
import os
import random
import subprocess
import sys
import time
from collections import Counter
from dataclasses import dataclass
from pathlib import Path

import httptools
import httpx
import orjson
import psutil
import pytest

from proxy.children import wait_http_ok
from tests.soak.child import STATE_PATH
from tests.support.metrics import scrape
from tests.support.servers import free_port

SECONDS = float(os.environ.get("INFERMETER_SOAK_SECONDS", "60"))
WARMUP = max(3.0, SECONDS * 0.1)
WORKERS = 48
MAX_BODY = 256 * 1024
ROOT = Path(__file__).resolve().parents[2]
# Python keeps freed memory in its pools: after a warm-up at the same load, RSS may
# still creep by fragmentation, but not by anything that grows with the request count.
RSS_SLACK = 24 << 20


@dataclass(frozen=True)
class Kind:
    path: str
    body: dict[str, object]
    expect: int = 200
    method: str = "POST"


KINDS = [
    Kind("/v1/chat/completions", {"model": "m-a", "messages": [{"role": "user", "content": "hi"}], "stream": True,
                                  "stream_options": {"include_usage": True}}),
    Kind("/v1/chat/completions", {"model": "m-b", "messages": [{"role": "user", "content": "hi"}], "stream": True}),
    Kind("/v1/chat/completions", {"model": "m-a", "messages": [{"role": "user", "content": "hi"}]}),
    Kind("/v1/completions", {"model": "m-c", "prompt": "once upon", "stream": True}),
    Kind("/v1/responses", {"model": "m-a", "input": "hi", "stream": True}),
    Kind("/v1/messages", {"model": "claude-x", "max_tokens": 64, "messages": [{"role": "user", "content": "hi"}],
                          "stream": True}),
    Kind("/api/chat", {"model": "llama-x", "messages": [{"role": "user", "content": "hi"}]}),
    Kind("/api/generate", {"model": "llama-x", "prompt": "hi", "stream": False}),
    Kind("/generate_stream", {"inputs": "hi", "parameters": {"max_new_tokens": 64}}),
    Kind("/completion", {"prompt": "hi", "stream": True}),
    Kind("/v1/embeddings", {"model": "emb", "input": "hi"}),
    Kind("/v1/models", {}, method="GET"),
]


@dataclass
class Tally:
    sent: int = 0
    completed: int = 0
    cancelled: int = 0
    statuses: Counter[int] | None = None
    bad: int = 0
    samples: list[str] | None = None


def _request(port: int, kind: Kind, rng: random.Random) -> tuple[bytes, int]:
    headers = {"x-sim-ttft": f"{rng.uniform(0.0, 0.05):.3f}", "x-sim-tbt": f"{rng.uniform(0.002, 0.02):.3f}",
               "x-sim-output-tokens": str(rng.randint(1, 60))}
    body = b"" if kind.method == "GET" else orjson.dumps(kind.body)
    expect = kind.expect
    roll = rng.random()
    if roll < 0.04 and kind.method == "POST":
        headers["x-sim-error"] = rng.choice(["429", "500", "503"])
        expect = int(headers["x-sim-error"])
    elif roll < 0.06 and kind.method == "POST":
        body = b'{"pad": "' + b"x" * (MAX_BODY + 1) + b'"}'
        expect = 413
    lines = "".join(f"{k}: {v}\r\n" for k, v in headers.items())
    head = (f"{kind.method} {kind.path} HTTP/1.1\r\nHost: 127.0.0.1:{port}\r\nConnection: close\r\n"
            f"Content-Type: application/json\r\nAuthorization: Bearer soak\r\n{lines}"
            f"Content-Length: {len(body)}\r\n\r\n").encode()
    return head + body, expect


class _Parse:
    def __init__(self) -> None:
        self.complete = False

    def on_message_complete(self) -> None:
        self.complete = True


class _Collect(asyncio.Protocol):
    """Everything the relay sends until it closes; a reset after the answer loses nothing."""

    def __init__(self) -> None:
        self.data = bytearray()
        self.first: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        self.closed: asyncio.Future[None] = asyncio.get_running_loop().create_future()

    def data_received(self, data: bytes) -> None:
        self.data += data
        if not self.first.done():
            self.first.set_result(None)

    def connection_lost(self, exc: Exception | None) -> None:
        for fut in (self.first, self.closed):
            if not fut.done():
                fut.set_result(None)


async def _one(port: int, rng: random.Random, tally: Tally) -> None:
    kind = rng.choice(KINDS)
    request, expect = _request(port, kind, rng)
    mode = rng.random()
    transport, conn = await asyncio.get_running_loop().create_connection(_Collect, "127.0.0.1", port)
    tally.sent += 1
    try:
        if mode < 0.05:  # leave while sending the body
            transport.write(request[: len(request) - max(1, len(request) // 3)])
            await asyncio.sleep(rng.uniform(0, 0.02))
            tally.cancelled += 1
            return
        transport.write(request)
        if mode < 0.12:  # leave while the upstream thinks
            await asyncio.sleep(rng.uniform(0, 0.03))
            tally.cancelled += 1
            return
        if mode < 0.30:  # leave mid-stream
            await conn.first
            await asyncio.sleep(rng.uniform(0, 0.2))
            tally.cancelled += 1
            return
        await asyncio.wait_for(conn.closed, 30)
        parse = _Parse()
        parser = httptools.HttpResponseParser(parse)
        try:
            parser.feed_data(bytes(conn.data))
            status = parser.get_status_code()
        except httptools.HttpParserError:
            status = 0
        assert tally.statuses is not None
        tally.statuses[status] += 1
        if status != expect or not parse.complete:
            tally.bad += 1
            if tally.samples is not None and len(tally.samples) < 5:
                tally.samples.append(f"{kind.method} {kind.path}: {status} (expected {expect}), "
                                     f"{'complete' if parse.complete else 'cut short'} after {len(conn.data)} bytes")
        tally.completed += 1
    finally:
        transport.abort()


async def _load(port: int, seconds: float, seed: int, tally: Tally) -> None:
    deadline = time.monotonic() + seconds

    async def worker(n: int) -> None:
        rng = random.Random(seed * 1000 + n)
        while time.monotonic() < deadline:
            await _one(port, rng, tally)

    await asyncio.gather(*(worker(n) for n in range(WORKERS)))


@dataclass
class State:
    rss: int
    fds: int
    tasks: int
    in_flight: float


def _quiet_state(url: str, pid: int, upstream_port: int, timeout: float = 20.0) -> State:
    """The relay's state once nothing is in flight and no connection is open, in or out
    (idle pooled upstream connections close when the simulator's 5 s keep-alive runs out)."""
    deadline = time.monotonic() + timeout
    proc = psutil.Process(pid)
    while time.monotonic() < deadline:
        in_flight = scrape(url).get("infermeter_requests_in_flight")
        open_conns = [c for c in proc.net_connections(kind="tcp") if c.status != psutil.CONN_LISTEN
                      and (c.raddr and c.raddr.port == upstream_port or c.laddr.port == int(url.rsplit(":", 1)[1]))]
        if in_flight == 0 and not open_conns:
            break
        time.sleep(0.25)
    tasks = int(httpx.get(url + STATE_PATH).json()["tasks"])
    return State(proc.memory_info().rss, proc.num_fds(), tasks, scrape(url).get("infermeter_requests_in_flight"))


@pytest.mark.soak
@pytest.mark.timeout(SECONDS + 180)
def test_soak_mixed_streams_with_cancellations_return_to_baseline() -> None:
    sim_port, port = free_port(), free_port()
    sim = subprocess.Popen([sys.executable, "-m", "proxy", "simulate", "--port", str(sim_port),
                            "--log-level", "warning"], cwd=ROOT)
    relay = subprocess.Popen([sys.executable, "-m", "tests.soak.child", "--upstream", f"http://127.0.0.1:{sim_port}",
                              "--port", str(port), "--max-request-bytes", str(MAX_BODY)], cwd=ROOT)
    url = f"http://127.0.0.1:{port}"
    try:
        wait_http_ok(f"http://127.0.0.1:{sim_port}/health", proc=sim)
        wait_http_ok(url + "/healthz", proc=relay)
        warm = Tally(statuses=Counter())
        asyncio.run(_load(port, WARMUP, 1, warm))
        base = _quiet_state(url, relay.pid, sim_port)
        tally = Tally(statuses=Counter(), samples=[])
        started = time.monotonic()
        asyncio.run(_load(port, SECONDS, 2, tally))
        elapsed = time.monotonic() - started
        end = _quiet_state(url, relay.pid, sim_port)
        m = scrape(url)
    finally:
        relay.terminate()
        sim.terminate()
        relay.wait(10)
        sim.wait(10)
    summary = (f"{tally.sent} requests in {elapsed:.0f} s ({tally.cancelled} cancelled, statuses {dict(tally.statuses or {})}); "
               f"RSS {base.rss >> 20} -> {end.rss >> 20} MiB, fds {base.fds} -> {end.fds}, tasks {base.tasks} -> {end.tasks}; "
               f"bad: {tally.samples}")
    print(summary)
    assert tally.sent > 20 * SECONDS, summary
    assert tally.bad == 0, summary
    assert end.in_flight == 0 and base.in_flight == 0
    assert end.fds <= base.fds, summary
    assert end.tasks <= base.tasks, summary
    assert end.rss - base.rss < RSS_SLACK, summary
    # Every departure was seen as one, and no healthy upstream was blamed for it.
    assert m.get("infermeter_requests_total", outcome="cancelled") >= tally.cancelled * 0.5
    assert m.get("infermeter_requests_total", outcome="upstream_error") == 0
