"""Serving one model request: overrides, errors, the queue, the token schedule, the sends.

Per-request overrides come from headers: ``x-sim-ttft`` and ``x-sim-tbt`` (seconds),
``x-sim-output-tokens`` (the natural output length before any request cap),
``x-sim-error`` (an HTTP status from 400 to 599 to answer with at once, in the
endpoint's own error shape) and ``x-sim-output`` (a fixed output text as a JSON string,
scripted.py).
A bad override value is answered 400.
"""

from __future__ import annotations

import asyncio
import contextlib
import math
import random
from dataclasses import dataclass
from typing import Any

import orjson

from proxy.simulator.config import SimConfig
from proxy.simulator.engine_metrics import EngineMetrics
from proxy.simulator.errors import error_body
from proxy.simulator.http import Receive, Send, read_body, send_json, start_stream
from proxy.simulator.job import Format, Job
from proxy.simulator.residency import PromptCache, Residency
from proxy.simulator.routes import Endpoint
from proxy.simulator.scripted import ScriptedText
from proxy.simulator.schedule import Watch, gap_factors, last_token_delay, token_schedule
from proxy.simulator.slots import Slots
from proxy.simulator.stats import SimStats
from proxy.simulator.tokens import Vocabulary, output_cap


class BadRequest(Exception):
    def __init__(self, status: int, message: str) -> None:
        super().__init__(message)
        self.status = status
        self.message = message


@dataclass(frozen=True, slots=True)
class Overrides:
    ttft: float
    tbt: float
    output_tokens: int
    error: int | None
    # A fixed output text (x-sim-output, or the config's output_text); None: generated words.
    text: str | None = None


def _seconds(name: str, raw: bytes) -> float:
    try:
        value = float(raw)
    except ValueError:
        raise BadRequest(400, f"header {name} must be a number of seconds, got {raw.decode(errors='replace')!r}")
    if not math.isfinite(value) or value < 0:
        raise BadRequest(400, f"header {name} must be a finite number of seconds >= 0")
    return value


def _integer(name: str, raw: bytes, low: int, high: int) -> int:
    try:
        value = int(raw)
    except ValueError:
        raise BadRequest(400, f"header {name} must be an integer, got {raw.decode(errors='replace')!r}")
    if not low <= value <= high:
        raise BadRequest(400, f"header {name} must be between {low} and {high}")
    return value


def _text(raw: bytes) -> str:
    # A JSON string: a header value cannot hold newlines or end in a space, an answer can.
    try:
        value = orjson.loads(raw)
    except orjson.JSONDecodeError:
        value = None
    if not isinstance(value, str):
        raise BadRequest(400, "header x-sim-output must be a JSON string, e.g. \"{\\\"a\\\": 1}\"")
    return value


def overrides(config: SimConfig, headers: list[tuple[bytes, bytes]]) -> Overrides:
    ttft, tbt, tokens, error, text = config.ttft, config.tbt, config.output_tokens, None, config.output_text
    for name, value in headers:
        if not name.startswith(b"x-sim-"):
            continue
        if name == b"x-sim-ttft":
            ttft = _seconds("x-sim-ttft", value)
        elif name == b"x-sim-tbt":
            tbt = _seconds("x-sim-tbt", value)
        elif name == b"x-sim-output-tokens":
            tokens = _integer("x-sim-output-tokens", value, 0, 10_000_000)
        elif name == b"x-sim-error":
            error = _integer("x-sim-error", value, 400, 599)
        elif name == b"x-sim-output":
            text = _text(value)
    return Overrides(ttft, tbt, tokens, error, text)


def _retry_after(status: int) -> tuple[tuple[bytes, bytes], ...]:
    return ((b"retry-after", b"1"),) if status in (429, 503) else ()


class Engine:
    """Runs model requests against one configuration, one queue and one set of counters."""

    def __init__(self, config: SimConfig, stats: SimStats) -> None:
        self.config = config
        self.stats = stats
        self.slots = Slots(config.max_concurrency)
        self.metrics = EngineMetrics(config.model, stats)
        self.vocab = Vocabulary(config.seed)
        self.residency = Residency(config.load_time, config.keep_alive)
        self.prompts = PromptCache()
        # Error injection draws from its own generator so jitter does not shift it.
        self._error_rng = random.Random(config.seed)
        self._count = 0

    async def handle(self, endpoint: Endpoint, scope: dict[str, Any], receive: Receive, send: Send) -> None:
        loop = asyncio.get_running_loop()
        arrival = loop.time()
        self.stats.requests += 1
        self._count += 1
        number = self._count
        raw = await read_body(receive)
        if raw is None:
            self.stats.cancelled += 1
            return
        try:
            job, plan = self._plan(endpoint, scope, raw, number)
        except BadRequest as bad:
            self.stats.errors += 1
            await send_json(send, bad.status, error_body(endpoint.family, bad.status, bad.message),
                            _retry_after(bad.status))
            return
        job.t_arrival = arrival
        # Only Ollama loads models on demand; the other servers hold theirs from start-up.
        await self._run(job, endpoint.make(job, self.config.seed), plan, number, receive, send,
                        loads=endpoint.family == "ollama")

    def _plan(self, endpoint: Endpoint, scope: dict[str, Any], raw: bytes, number: int) -> tuple[Job, Overrides]:
        plan = overrides(self.config, scope["headers"])
        if plan.error is not None:
            raise BadRequest(plan.error, f"simulated error {plan.error} (x-sim-error)")
        try:
            body = orjson.loads(raw)
        except orjson.JSONDecodeError as exc:
            raise BadRequest(400, f"request body is not valid JSON: {exc}") from None
        if not isinstance(body, dict):
            raise BadRequest(400, "request body must be a JSON object")
        if endpoint.check is not None:
            problem = endpoint.check(body)
            if problem is not None:
                raise BadRequest(422 if endpoint.family == "tgi" else 400, problem)
        if self.config.error_rate and self._error_rng.random() < self.config.error_rate:
            raise BadRequest(500, "simulated server error (error rate)")
        model = body.get("model")
        cap = output_cap(body)
        natural = plan.output_tokens if endpoint.generates else 0
        vocab: Vocabulary | ScriptedText = self.vocab
        if plan.text is not None and endpoint.generates:
            vocab = ScriptedText(plan.text)
            natural = vocab.count
        count = natural if cap is None else min(natural, cap)
        truncated = cap is not None and cap <= natural and endpoint.generates
        job = Job(
            model=model if isinstance(model, str) and model else self.config.model,
            rid=f"{number:024x}", stream=endpoint.stream(body), input_tokens=endpoint.prompt(body),
            output_tokens=count, finish="length" if truncated else "stop", cap=cap, body=body, vocab=vocab,
        )
        if endpoint.generates:
            job.cached_tokens = self.prompts.lookup(job.model, body, job.input_tokens)
        return job, plan

    async def _run(self, job: Job, fmt: Format, plan: Overrides, number: int, receive: Receive, send: Send,
                   loads: bool = False) -> None:
        loop = asyncio.get_running_loop()
        stats = self.stats
        watch = Watch(loop)
        watch.start(receive)
        stats.active += 1
        if stats.active > stats.max_active:
            stats.max_active = stats.active
        try:
            if job.stream:
                await start_stream(send, fmt.stream_content_type)
            queued = self.slots.full()
            if queued:
                stats.queued += 1
            try:
                granted = await self.slots.acquire(watch)
            finally:
                if queued:
                    stats.queued -= 1
            if not granted:
                stats.cancelled += 1
                return
            try:
                job.t_start = loop.time() if queued else job.t_arrival
                self.metrics.started(job)
                factor = gap_factors(self.config.jitter, self._jitter_rng(number))
                if loads and not await self._load(job, watch):
                    done = False
                elif job.stream:
                    done = await self._stream(job, fmt, plan, factor, watch, send)
                else:
                    done = await self._whole(job, fmt, plan, factor, watch, send)
            finally:
                self.slots.release()
                if loads:
                    self.residency.release(job.model, loop.time())
                self.metrics.ended(job)
            if done:
                stats.completed += 1
            else:
                stats.cancelled += 1
        finally:
            stats.active -= 1
            watch.finish()

    async def _load(self, job: Job, watch: Watch) -> bool:
        """Wait for the model to load if it is cold; the schedule then starts after the load."""
        job.load = self.residency.acquire(job.model, job.t_start)
        if job.load:
            if not await watch.sleep_until(job.t_start + job.load):
                return False
            job.t_start += job.load
        return not watch.gone

    def _jitter_rng(self, number: int) -> random.Random | None:
        # One generator per request, seeded by its arrival number: a request's gaps do
        # not depend on how other streams interleave with it.
        if not self.config.jitter:
            return None
        return random.Random(self.config.seed * 1_000_003 + number)

    async def _stream(self, job: Job, fmt: Format, plan: Overrides, factor: Any, watch: Watch, send: Send) -> bool:
        loop = watch.loop
        head = fmt.head()
        if head:
            await send({"type": "http.response.body", "body": head, "more_body": True})
        ticks = token_schedule(watch, job.t_start, plan.ttft, plan.tbt, job.output_tokens, factor)
        async with contextlib.aclosing(ticks):
            async for i in ticks:
                await send({"type": "http.response.body", "body": fmt.token(i), "more_body": True})
                if i == 0:
                    job.t_first = loop.time()
        if watch.gone:
            return False
        now = loop.time()
        job.t_last = now
        if not job.t_first:
            job.t_first = now
        await send({"type": "http.response.body", "body": fmt.tail(now), "more_body": False})
        return True

    async def _whole(self, job: Job, fmt: Format, plan: Overrides, factor: Any, watch: Watch, send: Send) -> bool:
        loop = watch.loop
        delay = last_token_delay(plan.ttft, plan.tbt, job.output_tokens, factor)
        if delay > 0 and not await watch.sleep_until(job.t_start + delay):
            return False
        if watch.gone:
            return False
        now = loop.time()
        job.t_first = min(now, job.t_start + plan.ttft)
        job.t_last = now
        await send_json(send, 200, fmt.whole(now))
        return True
