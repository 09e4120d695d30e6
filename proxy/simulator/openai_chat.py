"""OpenAI ``/v1/chat/completions`` and ``/v1/completions``.

Streams are SSE ``data: {...}`` events ending ``data: [DONE]``. A chat stream opens with
a role-only chunk; each token is one chunk; a chunk with an empty delta carries
``finish_reason``; with ``stream_options.include_usage`` every chunk has
``"usage": null`` and a last chunk with ``choices: []`` carries the usage, as OpenAI
sends it. Without it there is no usage in the stream at all.

As llama-server's OpenAI routes do, the usage states ``prompt_tokens_details.cached_tokens``
(a repeated prompt is served from the prompt cache) and the last chunk, or the body,
carries llama.cpp's ``timings`` (its prefill and decode times; llamacpp.py).
"""

from __future__ import annotations

from typing import Any

import orjson

from proxy.simulator.job import Job
from proxy.simulator.llamacpp import timings

SSE = b"text/event-stream; charset=utf-8"
DONE = b"data: [DONE]\n\n"


def include_usage(body: dict[str, Any]) -> bool:
    options = body.get("stream_options")
    return isinstance(options, dict) and options.get("include_usage") is True


def usage(job: Job) -> dict[str, Any]:
    return {"prompt_tokens": job.input_tokens, "completion_tokens": job.output_tokens,
            "total_tokens": job.input_tokens + job.output_tokens,
            "prompt_tokens_details": {"cached_tokens": job.cached_tokens}}


class _Stream:
    __slots__ = ("job", "_pre", "_tail_usage", "_end")

    stream_content_type = SSE

    def __init__(self, job: Job, object_name: bytes, id_prefix: str) -> None:
        self.job = job
        self._pre = (b'data: {"id":"' + id_prefix.encode() + job.rid.encode() + b'","object":"' + object_name
                     + b'","created":' + str(job.created).encode() + b',"model":' + job.model_json
                     + b',"system_fingerprint":null,"choices":')
        with_usage = include_usage(job.body)
        self._end = b',"usage":null}\n\n' if with_usage else b"}\n\n"
        self._tail_usage = with_usage

    def _finish_end(self, now: float) -> bytes:
        """The end of the finish chunk, and the usage chunk when the client asked for usage:
        llama-server puts ``timings`` in the last of them."""
        job = self.job
        if not self._tail_usage:
            return b',"timings":' + orjson.dumps(timings(job, now)) + b"}\n\n"
        return (self._end + self._pre + b'[],"usage":' + orjson.dumps(usage(job)) + b',"timings":'
                + orjson.dumps(timings(job, now)) + b"}\n\n")


class ChatFormat(_Stream):
    __slots__ = ()

    def __init__(self, job: Job) -> None:
        super().__init__(job, b"chat.completion.chunk", "chatcmpl-")

    def head(self) -> bytes:
        return (self._pre + b'[{"index":0,"delta":{"role":"assistant","content":""},"logprobs":null,'
                b'"finish_reason":null}]' + self._end)

    def token(self, i: int) -> bytes:
        return (self._pre + b'[{"index":0,"delta":{"content":' + self.job.vocab.json(i)
                + b'},"logprobs":null,"finish_reason":null}]' + self._end)

    def tail(self, now: float) -> bytes:
        return (self._pre + b'[{"index":0,"delta":{},"logprobs":null,"finish_reason":"'
                + self.job.finish.encode() + b'"}]' + self._finish_end(now) + DONE)

    def whole(self, now: float) -> bytes:
        job = self.job
        return orjson.dumps({
            "id": "chatcmpl-" + job.rid, "object": "chat.completion", "created": job.created, "model": job.model,
            "system_fingerprint": None,
            "choices": [{"index": 0, "message": {"role": "assistant", "content": job.text(), "refusal": None},
                         "logprobs": None, "finish_reason": job.finish}],
            "usage": usage(job), "timings": timings(job, now),
        })


class CompletionFormat(_Stream):
    __slots__ = ()

    def __init__(self, job: Job) -> None:
        super().__init__(job, b"text_completion", "cmpl-")

    def head(self) -> bytes:
        return b""

    def token(self, i: int) -> bytes:
        return (self._pre + b'[{"index":0,"text":' + self.job.vocab.json(i)
                + b',"logprobs":null,"finish_reason":null}]' + self._end)

    def tail(self, now: float) -> bytes:
        return (self._pre + b'[{"index":0,"text":"","logprobs":null,"finish_reason":"'
                + self.job.finish.encode() + b'"}]' + self._finish_end(now) + DONE)

    def whole(self, now: float) -> bytes:
        job = self.job
        return orjson.dumps({
            "id": "cmpl-" + job.rid, "object": "text_completion", "created": job.created, "model": job.model,
            "system_fingerprint": None,
            "choices": [{"index": 0, "text": job.text(), "logprobs": None, "finish_reason": job.finish}],
            "usage": usage(job), "timings": timings(job, now),
        })
