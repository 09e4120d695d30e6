"""OpenAI Responses API, ``/v1/responses``.

A stream is SSE with ``event:`` and ``data:`` lines and a ``sequence_number`` on every
event: ``response.created``, ``response.in_progress``, ``response.output_item.added``,
``response.content_part.added``, one ``response.output_text.delta`` per token, then
``response.output_text.done``, ``response.content_part.done``,
``response.output_item.done`` and ``response.completed`` with usage, or, when
``max_output_tokens`` cut the answer, ``response.incomplete`` (as the real API does).
"""

from __future__ import annotations

from typing import Any

import orjson

from proxy.simulator.job import Job

SSE = b"text/event-stream; charset=utf-8"


def _event(kind: str, payload: dict[str, Any]) -> bytes:
    return b"event: " + kind.encode() + b"\ndata: " + orjson.dumps(payload) + b"\n\n"


class ResponsesFormat:
    __slots__ = ("job", "_msg_id", "_delta_pre", "_delta_end")

    stream_content_type = SSE

    def __init__(self, job: Job) -> None:
        self.job = job
        self._msg_id = "msg_" + job.rid
        self._delta_pre = b'event: response.output_text.delta\ndata: {"type":"response.output_text.delta","sequence_number":'
        self._delta_end = (b',"item_id":"' + self._msg_id.encode()
                           + b'","output_index":0,"content_index":0,"logprobs":[],"delta":')

    def _response(self, status: str, output: list[dict[str, Any]], with_usage: bool) -> dict[str, Any]:
        job = self.job
        instructions = job.body.get("instructions")
        return {
            "id": "resp_" + job.rid, "object": "response", "created_at": job.created, "status": status,
            "error": None,
            "incomplete_details": {"reason": "max_output_tokens"} if status == "incomplete" else None,
            "instructions": instructions if isinstance(instructions, str) else None,
            "max_output_tokens": job.cap, "model": job.model, "output": output, "parallel_tool_calls": True,
            "previous_response_id": None, "reasoning": {"effort": None, "summary": None}, "store": False,
            "temperature": 1.0, "text": {"format": {"type": "text"}}, "tool_choice": "auto", "tools": [],
            "top_p": 1.0, "truncation": "disabled", "metadata": {},
            "usage": self._usage() if with_usage else None,
        }

    def _usage(self) -> dict[str, Any]:
        job = self.job
        return {"input_tokens": job.input_tokens, "input_tokens_details": {"cached_tokens": job.cached_tokens},
                "output_tokens": job.output_tokens, "output_tokens_details": {"reasoning_tokens": 0},
                "total_tokens": job.input_tokens + job.output_tokens}

    def _part(self) -> dict[str, Any]:
        return {"type": "output_text", "text": self.job.text(), "annotations": [], "logprobs": []}

    def _item(self, status: str, content: list[dict[str, Any]]) -> dict[str, Any]:
        return {"id": self._msg_id, "type": "message", "status": status, "role": "assistant", "content": content}

    def head(self) -> bytes:
        ids = {"item_id": self._msg_id, "output_index": 0, "content_index": 0}
        return b"".join((
            _event("response.created", {"type": "response.created", "sequence_number": 0,
                                        "response": self._response("in_progress", [], False)}),
            _event("response.in_progress", {"type": "response.in_progress", "sequence_number": 1,
                                            "response": self._response("in_progress", [], False)}),
            _event("response.output_item.added", {"type": "response.output_item.added", "sequence_number": 2,
                                                  "output_index": 0, "item": self._item("in_progress", [])}),
            _event("response.content_part.added", {"type": "response.content_part.added", "sequence_number": 3,
                                                   **ids, "part": {"type": "output_text", "text": "",
                                                                   "annotations": [], "logprobs": []}}),
        ))

    def token(self, i: int) -> bytes:
        return self._delta_pre + str(4 + i).encode() + self._delta_end + self.job.vocab.json(i) + b"}\n\n"

    def tail(self, now: float) -> bytes:
        job = self.job
        seq = 4 + job.output_tokens
        ids = {"item_id": self._msg_id, "output_index": 0, "content_index": 0}
        status = "incomplete" if job.truncated else "completed"
        part = self._part()
        item = self._item(status, [part])
        final = "response." + status
        return b"".join((
            _event("response.output_text.done", {"type": "response.output_text.done", "sequence_number": seq, **ids,
                                                 "text": part["text"], "logprobs": []}),
            _event("response.content_part.done", {"type": "response.content_part.done", "sequence_number": seq + 1,
                                                  **ids, "part": part}),
            _event("response.output_item.done", {"type": "response.output_item.done", "sequence_number": seq + 2,
                                                 "output_index": 0, "item": item}),
            _event(final, {"type": final, "sequence_number": seq + 3,
                           "response": self._response(status, [item], True)}),
        ))

    def whole(self, now: float) -> bytes:
        status = "incomplete" if self.job.truncated else "completed"
        return orjson.dumps(self._response(status, [self._item(status, [self._part()])], True))
