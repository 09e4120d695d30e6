"""llama.cpp server's native ``/completion``.

A stream is SSE ``data: {...}``: one event per token with ``content``, ``tokens`` and
``stop: false``, then a final event with ``stop: true``, empty ``content``,
``tokens_predicted``, ``tokens_evaluated``, ``stop_type`` (``eos`` or ``limit``) and
``timings``. The non-streaming answer is that final object with the whole ``content``.

``timings`` are the request's real milestones, as llama-server measures its own:
``prompt_ms`` from the start of generation (after any queue) to the first token,
``predicted_ms`` from the first token to the last, ``cache_n`` the prompt tokens served
from the prompt cache and ``prompt_n`` the rest. The OpenAI routes carry the same object.
"""

from __future__ import annotations

from typing import Any

import orjson

from proxy.simulator.job import Job

SSE = b"text/event-stream"


def _per(count: int, ms: float) -> tuple[float, float]:
    """(ms per token, tokens per second), 0 where undefined."""
    per_token = ms / count if count else 0.0
    per_second = 1000.0 * count / ms if ms > 0 else 0.0
    return per_token, per_second


def timings(job: Job, now: float) -> dict[str, Any]:
    """llama-server's ``timings`` object for a finished job."""
    prompt_ms = max(0.0, ((job.t_first or now) - job.t_start) * 1000.0)
    predicted_ms = max(0.0, (job.t_last - job.t_first) * 1000.0)
    evaluated = job.input_tokens - job.cached_tokens
    prompt_per_token, prompt_per_second = _per(evaluated, prompt_ms)
    predicted_per_token, predicted_per_second = _per(job.output_tokens, predicted_ms)
    return {
        "cache_n": job.cached_tokens, "prompt_n": evaluated, "prompt_ms": prompt_ms,
        "prompt_per_token_ms": prompt_per_token, "prompt_per_second": prompt_per_second,
        "predicted_n": job.output_tokens, "predicted_ms": predicted_ms,
        "predicted_per_token_ms": predicted_per_token, "predicted_per_second": predicted_per_second,
    }


class CompletionFormat:
    __slots__ = ("job", "_evaluated")

    stream_content_type = SSE

    def __init__(self, job: Job) -> None:
        self.job = job
        self._evaluated = str(job.input_tokens).encode()

    def head(self) -> bytes:
        return b""

    def token(self, i: int) -> bytes:
        vocab = self.job.vocab
        return (b'data: {"index":0,"content":' + vocab.json(i) + b',"tokens":[' + vocab.token_id(i)
                + b'],"stop":false,"id_slot":-1,"tokens_predicted":' + str(i + 1).encode()
                + b',"tokens_evaluated":' + self._evaluated + b"}\n\n")

    def _final(self, content: str, now: float) -> dict[str, Any]:
        job = self.job
        prompt = job.body.get("prompt")
        return {
            "index": 0, "content": content, "tokens": [], "id_slot": 0, "stop": True, "model": job.model,
            "tokens_predicted": job.output_tokens, "tokens_evaluated": job.input_tokens,
            "generation_settings": {"n_predict": job.cap if job.cap is not None else -1, "model": job.model,
                                    "stream": job.stream},
            "prompt": prompt if isinstance(prompt, str) else "",
            "has_new_line": False, "truncated": False,
            "stop_type": "limit" if job.truncated else "eos", "stopping_word": "",
            "tokens_cached": job.input_tokens + job.output_tokens,
            "timings": timings(job, now),
        }

    def tail(self, now: float) -> bytes:
        return b"data: " + orjson.dumps(self._final("", now)) + b"\n\n"

    def whole(self, now: float) -> bytes:
        return orjson.dumps(self._final(self.job.text(), now))
