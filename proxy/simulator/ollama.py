"""Ollama ``/api/chat`` and ``/api/generate``.

Streams are NDJSON (``stream`` defaults to true in Ollama): one line per token with
``done: false``, then a final line with ``done: true``, ``done_reason`` (``stop`` or
``length``), ``prompt_eval_count``, ``eval_count`` and durations in nanoseconds taken
from the request's real milestones: ``load_duration`` the wait for a cold model to load
(``--load-time``; 0 while it is loaded), ``prompt_eval_duration`` start (after any
load) to first token, ``eval_duration`` first to last token, ``total_duration`` arrival
to the end (queue wait and load included).
"""

from __future__ import annotations

import time
from typing import Any

import orjson

from proxy.simulator.job import Job

NDJSON = b"application/x-ndjson"


class _Clock:
    """``created_at`` stamps, formatting the date part once per second."""

    __slots__ = ("_second", "_prefix")

    def __init__(self) -> None:
        self._second = -1
        self._prefix = b""

    def stamp(self) -> bytes:
        now = time.time()
        second = int(now)
        if second != self._second:
            self._second = second
            self._prefix = time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(second)).encode()
        return self._prefix + b".%06dZ" % int((now - second) * 1_000_000)


_clock = _Clock()


def _ns(seconds: float) -> int:
    # Rounded, not truncated: a 0.3 s load measured as (now + 0.3) - now on a large
    # monotonic clock is 0.29999999999..., which int() would report as 299999999 ns.
    return max(0, round(seconds * 1e9))


def final_stats(job: Job, now: float) -> dict[str, Any]:
    return {
        "done_reason": job.finish,
        "total_duration": _ns(now - job.t_arrival), "load_duration": _ns(job.load),
        "prompt_eval_count": job.input_tokens, "prompt_eval_duration": _ns((job.t_first or now) - job.t_start),
        "eval_count": job.output_tokens, "eval_duration": _ns(job.t_last - job.t_first),
    }


class _Ndjson:
    __slots__ = ("job", "_pre", "_post")

    stream_content_type = NDJSON
    _field = b""
    _close = b""

    def __init__(self, job: Job) -> None:
        self.job = job
        self._pre = b'{"model":' + job.model_json + b',"created_at":"'
        self._post = b'",' + self._field

    def head(self) -> bytes:
        return b""

    def token(self, i: int) -> bytes:
        return self._pre + _clock.stamp() + self._post + self.job.vocab.json(i) + self._close + b',"done":false}\n'

    def _final(self, text: str, now: float) -> bytes:
        raise NotImplementedError

    def tail(self, now: float) -> bytes:
        return self._final("", now) + b"\n"

    def whole(self, now: float) -> bytes:
        return self._final(self.job.text(), now)


class ChatFormat(_Ndjson):
    __slots__ = ()
    _field = b'"message":{"role":"assistant","content":'
    _close = b"}"

    def _final(self, text: str, now: float) -> bytes:
        job = self.job
        return orjson.dumps({"model": job.model, "created_at": _clock.stamp().decode(),
                             "message": {"role": "assistant", "content": text}, "done": True,
                             **final_stats(job, now)})


class GenerateFormat(_Ndjson):
    __slots__ = ()
    _field = b'"response":'

    def _final(self, text: str, now: float) -> bytes:
        job = self.job
        return orjson.dumps({"model": job.model, "created_at": _clock.stamp().decode(), "response": text,
                             "done": True, **final_stats(job, now)})
