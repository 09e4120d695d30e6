"""Anthropic Messages API, ``/v1/messages``.

A stream is SSE with ``event:`` lines: ``message_start`` (input tokens; output tokens
1, as the real API reports at that point), ``content_block_start``, ``ping``, one
``content_block_delta``/``text_delta`` per token, ``content_block_stop``,
``message_delta`` with ``stop_reason`` (``end_turn`` or ``max_tokens``) and the
cumulative output tokens, and ``message_stop``.
"""

from __future__ import annotations

from typing import Any

import orjson

from proxy.simulator.job import Job

SSE = b"text/event-stream; charset=utf-8"


def _event(kind: str, payload: dict[str, Any]) -> bytes:
    return b"event: " + kind.encode() + b"\ndata: " + orjson.dumps(payload) + b"\n\n"


class MessagesFormat:
    __slots__ = ("job",)

    stream_content_type = SSE

    _DELTA_PRE = (b'event: content_block_delta\ndata: {"type":"content_block_delta","index":0,'
                  b'"delta":{"type":"text_delta","text":')

    def __init__(self, job: Job) -> None:
        self.job = job

    def _stop_reason(self) -> str:
        return "max_tokens" if self.job.truncated else "end_turn"

    def _message(self, content: list[dict[str, Any]], stop_reason: str | None, output_tokens: int) -> dict[str, Any]:
        job = self.job
        return {"id": "msg_" + job.rid, "type": "message", "role": "assistant", "model": job.model,
                "content": content, "stop_reason": stop_reason, "stop_sequence": None,
                "usage": {"input_tokens": job.input_tokens, "output_tokens": output_tokens}}

    def head(self) -> bytes:
        return b"".join((
            _event("message_start", {"type": "message_start", "message": self._message([], None, 1)}),
            _event("content_block_start", {"type": "content_block_start", "index": 0,
                                           "content_block": {"type": "text", "text": ""}}),
            _event("ping", {"type": "ping"}),
        ))

    def token(self, i: int) -> bytes:
        return self._DELTA_PRE + self.job.vocab.json(i) + b"}}\n\n"

    def tail(self, now: float) -> bytes:
        return b"".join((
            _event("content_block_stop", {"type": "content_block_stop", "index": 0}),
            _event("message_delta", {"type": "message_delta",
                                     "delta": {"stop_reason": self._stop_reason(), "stop_sequence": None},
                                     "usage": {"output_tokens": self.job.output_tokens}}),
            _event("message_stop", {"type": "message_stop"}),
        ))

    def whole(self, now: float) -> bytes:
        content = [{"type": "text", "text": self.job.text()}]
        return orjson.dumps(self._message(content, self._stop_reason(), self.job.output_tokens))
