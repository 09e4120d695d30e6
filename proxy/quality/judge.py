"""Evaluations (DESIGN.md section 15): a sample of exchanges, judged by a model, off the relay.

``submit`` is all the relay calls: one ``put_nowait`` per rubric into a bounded queue,
and a full queue drops the job (counted, outcome ``dropped``). ``concurrency`` worker
tasks take jobs and ask the judge, an OpenAI-compatible chat completions endpoint, for
``{"score": 0..1, "reason": "..."}``, constrained by a JSON schema (``response_format``
``json_schema``); a judge that refuses the schema (HTTP 400) is asked again without it,
and from then on always without. Each call has a deadline. A judge that is down, slow or
answers anything but a verdict is counted (outcome ``failed``) and costs the relay
nothing: the relay never awaits the judge, and the queue bounds what waits.

The judge is called directly at ``url``, never through this proxy, so its traffic is
never counted as user traffic. Prompts and answers go to that judge only; the log line
of a verdict carries the score and the judge's reason, never the exchange.
"""

from __future__ import annotations

import asyncio
import logging
import random
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import httpx
import orjson
from prometheus_client import Counter, Histogram

from proxy import __version__
from proxy.quality import rubrics
from proxy.quality.exchange import Exchange

log = logging.getLogger("infermeter.judge")

SCORED, FAILED, DROPPED = "scored", "failed", "dropped"
EVAL_OUTCOMES = (SCORED, FAILED, DROPPED)
REASON_LIMIT = 500

VERDICT_SCHEMA = {
    "type": "object",
    "properties": {
        "score": {"type": "number", "minimum": 0, "maximum": 1},
        "reason": {"type": "string", "maxLength": 300},
    },
    "required": ["score", "reason"],
    "additionalProperties": False,
}


@dataclass(frozen=True)
class JudgeConfig:
    url: str
    model: str
    sample: float = 0.01
    rubrics: dict[str, str] = field(default_factory=dict)  # name -> template, the ones to run
    concurrency: int = 2
    queue_size: int = 100
    timeout: float = 30.0
    max_tokens: int = 200
    api_key: str | None = None


def chat_url(url: str) -> str:
    """``--eval-url``: a chat completions URL, or a server's base URL (``/v1`` added when absent)."""
    url = url.rstrip("/")
    if url.endswith("/chat/completions"):
        return url
    return url + ("/chat/completions" if url.endswith("/v1") else "/v1/chat/completions")


def parse_verdict(content: Any) -> tuple[float, str] | None:
    """(score, reason) from the judge's message content; None for anything else."""
    if type(content) is not str:
        return None
    start, end = content.find("{"), content.rfind("}")
    if start < 0 or end < start:
        return None
    try:
        obj = orjson.loads(content[start : end + 1])
    except orjson.JSONDecodeError:
        return None
    if type(obj) is not dict:
        return None
    score = obj.get("score")
    if not (type(score) is int or type(score) is float) or not 0 <= score <= 1:
        return None
    reason = obj.get("reason")
    return float(score), (reason if type(reason) is str else "")[:REASON_LIMIT]


@dataclass(frozen=True, slots=True)
class _Job:
    exchange: Exchange
    rubric: str


class Judge:
    def __init__(self, config: JudgeConfig, score: Histogram | None = None, evals: Counter | None = None,
                 emit: Callable[[dict[str, Any]], None] | None = None, rng: random.Random | None = None) -> None:
        self.config = config
        self.url = chat_url(config.url)
        self._score = score
        self._evals = evals
        self._emit = emit
        self._rng = rng or random.Random()
        self._queue: asyncio.Queue[_Job] | None = None
        self._workers: list[asyncio.Task[None]] = []
        self._client: httpx.AsyncClient | None = None
        self._schema = True  # False once the judge refused response_format
        self._failing = False
        if evals is not None:
            for name in config.rubrics:
                for outcome in EVAL_OUTCOMES:
                    evals.labels(name, outcome)

    def sampled(self) -> bool:
        """Whether this request's exchange goes to the judge (decided at its start)."""
        return self._queue is not None and self._rng.random() < self.config.sample

    def start(self) -> None:
        """Start the workers on the running loop."""
        headers = {"user-agent": f"infermeter-judge/{__version__}"}
        if self.config.api_key:
            headers["authorization"] = f"Bearer {self.config.api_key}"
        # No cookies kept, no redirects followed, one deadline per call: set deliberately.
        self._client = httpx.AsyncClient(headers=headers, timeout=self.config.timeout, follow_redirects=False,
                                         limits=httpx.Limits(max_connections=self.config.concurrency))
        self._queue = asyncio.Queue(self.config.queue_size)
        self._workers = [asyncio.ensure_future(self._work()) for _ in range(self.config.concurrency)]

    async def close(self) -> None:
        for task in self._workers:
            task.cancel()
        for task in self._workers:
            try:
                await task
            except asyncio.CancelledError:
                pass
        self._workers = []
        if self._client is not None:
            await self._client.aclose()
            self._client = None
        self._queue = None

    def submit(self, exchange: Exchange) -> None:
        """Queue the exchange for every rubric; never waits (a full queue drops, counted)."""
        queue = self._queue
        if queue is None:
            return
        for name in self.config.rubrics:
            try:
                queue.put_nowait(_Job(exchange, name))
            except asyncio.QueueFull:
                self._count(name, DROPPED)

    @property
    def queued(self) -> int:
        return 0 if self._queue is None else self._queue.qsize()

    async def _work(self) -> None:
        queue = self._queue
        assert queue is not None
        while True:
            job = await queue.get()
            try:
                verdict = await self._ask(job)
            except Exception as exc:  # down, slow, refused, or a transport error: counted, never raised
                verdict = None
                self._note_failure(f"{type(exc).__name__}: {exc}")
            self._record(job, verdict)

    async def _ask(self, job: _Job) -> tuple[float, str] | None:
        client = self._client
        assert client is not None
        ex = job.exchange
        user = rubrics.render(self.config.rubrics[job.rubric], ex.context, ex.question, ex.answer)
        body: dict[str, Any] = {
            "model": self.config.model, "temperature": 0, "max_tokens": self.config.max_tokens, "stream": False,
            "messages": [{"role": "system", "content": rubrics.SYSTEM}, {"role": "user", "content": user}],
        }
        if self._schema:
            body["response_format"] = {"type": "json_schema",
                                       "json_schema": {"name": "verdict", "strict": True, "schema": VERDICT_SCHEMA}}
        response = await client.post(self.url, content=orjson.dumps(body), headers={"content-type": "application/json"})
        if response.status_code == 400 and self._schema:
            self._schema = False
            log.info("judge %s refused response_format json_schema: asking without it from now on", self.url)
            del body["response_format"]
            response = await client.post(self.url, content=orjson.dumps(body), headers={"content-type": "application/json"})
        if response.status_code != 200:
            self._note_failure(f"HTTP {response.status_code}")
            return None
        try:
            content = orjson.loads(response.content)["choices"][0]["message"]["content"]
        except (orjson.JSONDecodeError, LookupError, TypeError):
            content = None
        verdict = parse_verdict(content)
        if verdict is None:
            self._note_failure("the answer was not a verdict")
        elif self._failing:
            self._failing = False
            log.info("judge %s answers verdicts again", self.url)
        return verdict

    def _record(self, job: _Job, verdict: tuple[float, str] | None) -> None:
        if verdict is None:
            self._count(job.rubric, FAILED)
            return
        score, reason = verdict
        self._count(job.rubric, SCORED)
        ex = job.exchange
        if self._score is not None:
            self._score.labels(ex.model, job.rubric).observe(score, {"request_id": ex.request_id})
        if self._emit is not None:
            self._emit({"event": "eval", "request_id": ex.request_id, "rubric": job.rubric, "score": score,
                        "reason": reason})

    def _count(self, rubric: str, outcome: str) -> None:
        if self._evals is not None:
            self._evals.labels(rubric, outcome).inc()

    def _note_failure(self, why: str) -> None:
        # One line per change of state, not per call: a dead judge must not flood the log.
        if not self._failing:
            self._failing = True
            log.warning("judge %s failed (%s): evaluations counted as failed until it answers again", self.url, why)
