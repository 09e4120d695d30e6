"""Hugging Face TGI ``/generate_stream`` and ``/generate``.

TGI's stream is SSE written ``data:{...}`` with no space after the colon. Every event
is one token ``{"index", "token": {"id", "text", "logprob", "special"},
"generated_text", "details"}``; the last token's event also carries the whole
``generated_text`` and, when the request asked for ``parameters.details``,
``details`` with ``finish_reason`` (``eos_token`` or ``length``), ``generated_tokens``
and ``input_length``. There is no terminator event.
"""

from __future__ import annotations

from typing import Any

import orjson

from proxy.simulator.job import Job

SSE = b"text/event-stream"
_LOGPROB = b"-0.25"


def _parameters(job: Job) -> dict[str, Any]:
    params = job.body.get("parameters")
    return params if isinstance(params, dict) else {}


class GenerateFormat:
    __slots__ = ("job", "_details")

    stream_content_type = SSE

    def __init__(self, job: Job) -> None:
        self.job = job
        self._details = _parameters(job).get("details") is True

    def _finish(self) -> str:
        return "length" if self.job.truncated else "eos_token"

    def _token(self, i: int) -> bytes:
        vocab = self.job.vocab
        return (b'{"id":' + vocab.token_id(i) + b',"text":' + vocab.json(i) + b',"logprob":' + _LOGPROB
                + b',"special":false}')

    def head(self) -> bytes:
        return b""

    def token(self, i: int) -> bytes:
        job = self.job
        pre = b'data:{"index":' + str(i + 1).encode() + b',"token":' + self._token(i)
        if i + 1 < job.output_tokens:
            return pre + b',"generated_text":null,"details":null}\n\n'
        details = None
        if self._details:
            details = {"finish_reason": self._finish(), "generated_tokens": job.output_tokens, "seed": None,
                       "input_length": job.input_tokens}
        return (pre + b',"generated_text":' + orjson.dumps(job.text()) + b',"details":' + orjson.dumps(details)
                + b"}\n\n")

    def tail(self, now: float) -> bytes:
        return b""

    def whole(self, now: float) -> bytes:
        job = self.job
        answer: dict[str, Any] = {"generated_text": job.text()}
        if self._details:
            prefill = []
            if _parameters(job).get("decoder_input_details") is True:
                prefill = [{"id": 1000 + k, "text": "", "logprob": None} for k in range(job.input_tokens)]
            answer["details"] = {
                "finish_reason": self._finish(), "generated_tokens": job.output_tokens, "seed": None,
                "prefill": prefill,
                "tokens": [orjson.loads(self._token(i)) for i in range(job.output_tokens)],
            }
        return orjson.dumps(answer)
