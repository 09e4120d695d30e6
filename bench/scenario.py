"""One open-loop run against one path, and what it measured.

Streams arrive as a seeded Poisson process and are sent when the schedule says, whether
or not earlier ones have finished (open loop), and latency counts from the scheduled
time. For paced streams the run starts in steady state: ``concurrency`` streams with
remaining lengths drawn uniformly are opened first (the "prefill"), then arrivals at
``concurrency / stream duration`` per second keep the number open around ``concurrency``.
CPU time of the servers and of this process is read over the measurement window only.

A load has a kind: ``stream`` (chat completions streamed, the default), ``plain`` (chat
completions answered in one JSON body) or ``embeddings`` (``/v1/embeddings``, 1024
dimensions base64-encoded as the OpenAI SDK asks); and ``fresh`` opens a new client
connection per request instead of reusing kept-alive ones. A ``plain`` or ``embeddings``
response is one event: its "TTFT" is the time to its last byte.
"""

from __future__ import annotations

import asyncio
import os
import random
import time
from dataclasses import dataclass, field
from time import perf_counter_ns

import orjson

from bench.loadgen import Client, Rec, post_request
from bench.procs import cpu_seconds, machine_busy

PREFILL_S = 0.5
SETTLE_S = 0.5
# How long after the window a measured stream may still take to its first token.
GRACE_S = 5.0


@dataclass(frozen=True)
class Load:
    concurrency: int
    ttft: float
    tbt: float
    tokens: int
    window: float
    # Arrivals per second; None: derived from concurrency and the stream's duration.
    rate: float | None = None
    seed: int = 1
    kind: str = "stream"
    fresh: bool = False

    @property
    def stream_seconds(self) -> float:
        return self.ttft + max(self.tokens - 1, 0) * self.tbt

    @property
    def arrival_rate(self) -> float:
        if self.rate is not None:
            return self.rate
        return self.concurrency / max(self.stream_seconds, 1e-3)

    @property
    def paced(self) -> bool:
        return self.tbt > 0

    @property
    def whole(self) -> bool:
        """Each response is one event, not a stream of token chunks."""
        return self.kind != "stream"


@dataclass
class Result:
    path: str
    load: Load
    window_s: float = 0.0
    measured: int = 0
    errors: int = 0
    error_samples: list[str] = field(default_factory=list)
    no_first_token: int = 0
    ttft_ms: list[float] = field(default_factory=list)
    tbt_ms: list[float] = field(default_factory=list)
    late_ms: list[float] = field(default_factory=list)
    duration_ms: list[float] = field(default_factory=list)
    send_lag_ms: list[float] = field(default_factory=list)
    chunks: int = 0
    cpu_s: dict[str, float] = field(default_factory=dict)
    loadgen_cpu_s: float = 0.0
    machine_busy_s: float = 0.0
    machine_cores: float = 0.0


KINDS = ("stream", "plain", "embeddings")
EMBEDDING_DIMENSIONS = 1024


def _request(kind: str) -> tuple[str, bytes]:
    """(path, body) of one request of ``kind``."""
    if kind == "embeddings":
        return "/v1/embeddings", orjson.dumps({"model": "bench-embed", "input": "A sentence to embed, not long.",
                                               "dimensions": EMBEDDING_DIMENSIONS, "encoding_format": "base64"})
    if kind not in KINDS:
        raise ValueError(f"unknown load kind {kind!r}")
    chat: dict[str, object] = {"model": "bench-model", "messages": [{"role": "user", "content": "Say something."}]}
    if kind == "stream":
        chat.update(stream=True, stream_options={"include_usage": True})
    return "/v1/chat/completions", orjson.dumps(chat)


def _headers(load: Load, tokens: int) -> dict[str, str]:
    return {"x-sim-ttft": repr(load.ttft), "x-sim-tbt": repr(load.tbt), "x-sim-output-tokens": str(tokens)}


def _own_cpu() -> float:
    t = os.times()
    return t.user + t.system


async def run(path: str, host: str, port: int, load: Load, pids: dict[str, int]) -> Result:
    loop = asyncio.get_running_loop()
    rng = random.Random(load.seed)
    client = Client(host, port, fresh=load.fresh)
    target, body = _request(load.kind)
    full = post_request(target, host, port, _headers(load, load.tokens), body)
    recs: list[Rec] = []
    tasks: set[asyncio.Task[None]] = set()

    def launch(rec: Rec, request: bytes) -> None:
        recs.append(rec)
        task = loop.create_task(client.stream(request, rec))
        tasks.add(task)
        task.add_done_callback(tasks.discard)

    t0 = perf_counter_ns()
    if load.paced:
        # Streams already in flight when the window opens, each with its remaining length.
        for i in range(load.concurrency):
            at = t0 + int(PREFILL_S * 1e9 * i / load.concurrency)
            await _sleep_until(at)
            left = rng.randint(1, load.tokens)
            launch(Rec(at, measured=False, whole=load.whole),
                   post_request(target, host, port, _headers(load, left), body))
    arrivals_from = perf_counter_ns()
    w0 = arrivals_from + int(SETTLE_S * 1e9) if load.paced else arrivals_from
    w1 = w0 + int(load.window * 1e9)
    marks: dict[str, float] = {}

    async def window_marks() -> None:
        await _sleep_until(w0)
        marks.update({f"start:{n}": cpu_seconds(p) for n, p in pids.items()})
        marks["start:loadgen"] = _own_cpu()
        marks["start:busy"], marks["start:total"] = machine_busy()
        await _sleep_until(w1)
        marks.update({f"end:{n}": cpu_seconds(p) for n, p in pids.items()})
        marks["end:loadgen"] = _own_cpu()
        marks["end:busy"], marks["end:total"] = machine_busy()

    marker = loop.create_task(window_marks())
    at = arrivals_from
    rate = load.arrival_rate
    while True:
        at += int(rng.expovariate(rate) * 1e9)
        if at > w1:
            break
        await _sleep_until(at)
        launch(Rec(at, measured=w0 <= at <= w1, whole=load.whole), full)
    await marker

    # Measured streams still waiting for their first token get a grace period; the rest
    # of the run is cut off here, so every path is measured over the same window.
    deadline = time.monotonic() + GRACE_S
    while time.monotonic() < deadline:
        if all(r.times or r.error or r.complete for r in recs if r.measured):
            break
        await asyncio.sleep(0.02)
    if not load.paced:
        # Flat out: let in-flight streams finish, their whole duration is the measurement.
        while tasks and time.monotonic() < deadline:
            await asyncio.sleep(0.02)
    errors = [r for r in recs if r.error or (r.status and r.status != 200)]
    client.abort_all()
    for task in list(tasks):
        task.cancel()
    await asyncio.gather(*tasks, return_exceptions=True)

    result = Result(path, load, window_s=(w1 - w0) / 1e9)
    result.errors = len(errors)
    result.error_samples = sorted({r.error or f"HTTP {r.status}" for r in errors})[:5]
    _fill(result, recs, load, w0, w1)
    result.cpu_s = {n: marks[f"end:{n}"] - marks[f"start:{n}"] for n in pids}
    result.loadgen_cpu_s = marks["end:loadgen"] - marks["start:loadgen"]
    result.machine_busy_s = marks["end:busy"] - marks["start:busy"]
    result.machine_cores = (marks["end:total"] - marks["start:total"]) / result.window_s
    return result


def _fill(result: Result, recs: list[Rec], load: Load, w0: int, w1: int) -> None:
    tbt_ns = load.tbt * 1e9
    ttft_ns = load.ttft * 1e9
    for r in recs:
        times = r.times
        result.chunks += sum(1 for t in times if w0 <= t <= w1)
        prev = 0
        for t in times:
            if prev and w0 <= t <= w1:
                result.tbt_ms.append((t - prev) / 1e6)
            prev = t
        if not r.measured:
            continue
        result.measured += 1
        result.send_lag_ms.append((r.t_send - r.t_sched) / 1e6 if r.t_send else float("inf"))
        if not times:
            result.no_first_token += 1
            result.ttft_ms.append(float("inf"))
            continue
        result.ttft_ms.append((times[0] - r.t_sched) / 1e6)
        if r.complete:
            result.duration_ms.append((r.t_done - r.t_sched) / 1e6)
        if load.paced and not load.whole:
            for i, t in enumerate(times):
                result.late_ms.append((t - r.t_sched - ttft_ns - i * tbt_ns) / 1e6)


async def _sleep_until(t_ns: int) -> None:
    delay = (t_ns - perf_counter_ns()) / 1e9
    if delay > 0:
        await asyncio.sleep(delay)


async def quiesce(pids: dict[str, int], limit: float = 8.0) -> None:
    """Wait until the servers are idle again, so one run's backlog does not bill the next."""
    deadline = time.monotonic() + limit
    while time.monotonic() < deadline:
        before = {n: cpu_seconds(p) for n, p in pids.items()}
        await asyncio.sleep(0.25)
        if all(cpu_seconds(p) - before[n] < 0.01 for n, p in pids.items()):
            return
