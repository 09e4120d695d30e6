"""What the relay calls for response checks and evaluations: ``begin`` and ``finish``.

- ``begin`` (the request body was read): decides whether the exchange is sampled for the
  judge, and makes the request's ``ResponseChecks`` when any check applies to its endpoint;
- the relay then gives the checks the tap it makes (``ResponseChecks.watch``);
- ``finish`` (the record is final, its model label chosen): judges the answer, counts
  ``infermeter_response_checks_total``, leaves the results on the record for the log line
  and the span, and hands a sampled exchange to the judge (never waiting for it).

Only answers are checked: a 2xx response that completed, that a tap read, and whose
stream did not end in an error. A compressed body (not parsed) or one the tap could not
read is not judged: an unread answer is not an empty one.
"""

from __future__ import annotations

import os
from collections.abc import Callable
from typing import Any

from prometheus_client import CollectorRegistry, Counter

from proxy.config import Settings
from proxy.metrics.definitions import QualityMetrics

from proxy.quality.checks import ResponseChecks, failed
from proxy.quality.exchange import Exchange, prompt_parts
from proxy.quality.judge import Judge, JudgeConfig
from proxy.timing import COMPLETED, RequestRecord


Emit = Callable[[dict[str, Any]], None]


class Quality:
    def __init__(self, enabled: frozenset[str], checks_total: Counter | None, judge: Judge | None = None) -> None:
        self.enabled = enabled
        self.judge = judge
        self._total = checks_total
        self._children: dict[tuple[str, str, str, str], Any] = {}

    def start(self) -> None:
        """Start the judge's workers (on the running loop)."""
        if self.judge is not None:
            self.judge.start()

    async def close(self) -> None:
        if self.judge is not None:
            await self.judge.close()

    def begin(self, rec: RequestRecord, body: bytes) -> None:
        info = rec.request
        judge = self.judge
        sampled = judge is not None and judge.sampled()
        checks = ResponseChecks.create(rec.endpoint, self.enabled, info.expect if info is not None else None, sampled)
        if checks is not None and sampled:
            checks.body = body
        rec.quality = checks

    def finish(self, rec: RequestRecord, label: str | None) -> None:
        checks = rec.quality
        if checks is None:
            return
        rec.quality = None  # the kept text goes with it
        if not _answered(rec, checks):
            return
        results = checks.results()
        rec.checks = results
        rec.checks_failed = failed(results)
        model = label if label is not None else (rec.model or "unknown")
        if self._total is not None:
            for check, result in results:
                self._child(rec.endpoint, model, check, result).inc()
        body = checks.body
        if body is not None and self.judge is not None:
            answer = checks.content.partial_text()
            if answer:
                context, question = prompt_parts(rec.endpoint, body)
                self.judge.submit(Exchange(rec.request_id or "", model, context, question, answer))

    def _child(self, endpoint: str, model: str, check: str, result: str) -> Any:
        key = (endpoint, model, check, result)
        child = self._children.get(key)
        if child is None:
            assert self._total is not None
            child = self._children[key] = self._total.labels(endpoint, model, check, result)
        return child


def _answered(rec: RequestRecord, checks: ResponseChecks) -> bool:
    if not checks.watched or checks.errors or rec.outcome != COMPLETED or not 200 <= rec.code < 300:
        return False
    if rec.finish_reason == "error":
        return False
    # A body the JSON tap could not parse said nothing to the checks; a stream's odd event
    # is one event among many.
    return rec.stream or not rec.parse_errors



def build_quality(settings: Settings, registry: CollectorRegistry, emit: Emit | None) -> Quality | None:
    """The process's checks and judge from its settings; None when both are off.

    ``emit`` writes a verdict's ``{"event": "eval", ...}`` line (the request log's), if any.
    The judge's API key, if it needs one, comes from ``INFERMETER_EVAL_API_KEY`` only: a
    flag would show it in the process list."""
    enabled = settings.enabled_checks
    judged = settings.eval_url is not None and settings.eval_model is not None
    if not enabled and not judged:
        return None
    metrics = QualityMetrics(registry, checks=bool(enabled), evals=judged)
    judge = None
    if judged:
        assert settings.eval_url is not None and settings.eval_model is not None
        config = JudgeConfig(url=settings.eval_url, model=settings.eval_model, sample=settings.eval_sample,
                             rubrics=settings.judge_rubrics, concurrency=settings.eval_concurrency,
                             queue_size=settings.eval_queue, timeout=settings.eval_timeout,
                             api_key=os.environ.get("INFERMETER_EVAL_API_KEY") or None)
        judge = Judge(config, metrics.eval_score, metrics.evals, emit)
    return Quality(enabled, metrics.checks, judge)
