"""OpenAI ``/v1/chat/completions`` and ``/v1/completions``.

Streams are SSE ``data: {...}`` events ending ``data: [DONE]``. A chat stream opens with
a role-only chunk; each token is one chunk; a chunk with an empty delta carries
``finish_reason``; with ``stream_options.include_usage`` every chunk has
``"usage": null`` and a last chunk with ``choices: []`` carries the usage, as OpenAI
sends it. Without it there is no usage in the stream at all.
"""

from __future__ import annotations

from typing import Any

import orjson

from proxy.simulator.job import Job

SSE = b"text/event-stream; charset=utf-8"
DONE = b"data: [DONE]\n\n"


def include_usage(body: dict[str, Any]) -> bool:
    options = body.get("stream_options")
    return isinstance(options, dict) and options.get("include_usage") is True


def usage(job: Job) -> dict[str, int]:
    return {"prompt_tokens": job.input_tokens, "completion_tokens": job.output_tokens,
            "total_tokens": job.input_tokens + job.output_tokens}


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

    def _usage_chunk(self) -> bytes:
        if not self._tail_usage:
            return b""
        return self._pre + b'[],"usage":' + orjson.dumps(usage(self.job)) + b"}\n\n"


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
                + self.job.finish.encode() + b'"}]' + self._end + self._usage_chunk() + DONE)

    def whole(self, now: float) -> bytes:
        job = self.job
        return orjson.dumps({
            "id": "chatcmpl-" + job.rid, "object": "chat.completion", "created": job.created, "model": job.model,
            "system_fingerprint": None,
            "choices": [{"index": 0, "message": {"role": "assistant", "content": job.text(), "refusal": None},
                         "logprobs": None, "finish_reason": job.finish}],
            "usage": usage(job),
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
                + self.job.finish.encode() + b'"}]' + self._end + self._usage_chunk() + DONE)

    def whole(self, now: float) -> bytes:
        job = self.job
        return orjson.dumps({
            "id": "cmpl-" + job.rid, "object": "text_completion", "created": job.created, "model": job.model,
            "system_fingerprint": None,
            "choices": [{"index": 0, "text": job.text(), "logprobs": None, "finish_reason": job.finish}],
            "usage": usage(job),
        })
