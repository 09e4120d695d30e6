"""Hugging Face text-generation-inference: ``/generate_stream`` and ``/generate``.

The stream is SSE ``data:{...}`` lines (no space after the colon), one generated
token per event: a token event when ``token.text`` is non-empty and the token is not
``special`` (an end-of-sequence marker is not output). The last event also carries
``generated_text`` and, when the request asked for details, ``details`` with
``generated_tokens``, ``finish_reason`` and ``input_length``. ``/generate`` answers one
JSON object (older servers: a list of one) with the same ``details``; its prompt size
shows only as ``prefill`` tokens when the request asked for decoder input details.
Without details TGI states no counts and no finish reason. An ``error`` field in an
event or body ends the request as ``error``.
"""

from __future__ import annotations

from typing import Any

from orjson import loads

from proxy.stream.base import StreamSummary
from proxy.stream.fields import count, set_finish

_FINISH = {"eos_token": "stop", "stop_sequence": "stop", "length": "length"}


def on_sse(summary: StreamSummary, event: bytes, data: bytes) -> int:
    obj = loads(data)
    if obj.get("error"):
        set_finish(summary, "error")
        return 0
    token = obj.get("token")
    details = obj.get("details")
    if details:
        _details(summary, details)
    return 1 if token and token.get("text") and not token.get("special") else 0


def on_json(summary: StreamSummary, body: Any) -> None:
    if type(body) is list:
        body = body[0] if body else {}
    if body.get("error"):
        set_finish(summary, "error")
        return
    details = body.get("details")
    if details:
        _details(summary, details)


def _details(summary: StreamSummary, details: Any) -> None:
    tokens = count(details.get("generated_tokens"))
    if tokens is not None:
        summary.output_tokens = tokens
    tokens = count(details.get("input_length"))
    if tokens is None:
        prefill = details.get("prefill")
        if type(prefill) is list and prefill:
            tokens = len(prefill)
    if tokens is not None:
        summary.input_tokens = tokens
    reason = details.get("finish_reason")
    if reason:
        set_finish(summary, _FINISH.get(reason, "other"))
