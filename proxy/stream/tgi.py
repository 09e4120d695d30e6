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

``/generate`` (not the stream, whose headers go out before generation) also answers
with timing headers in whole milliseconds (TGI 3.x router, ``generate_internal``):
``x-queue-time`` is the ``queue`` phase. ``x-inference-time`` runs from the batch
taking the request to its end, prefill and decode together, with no split to be had,
so it is not a phase. ``x-prompt-tokens`` and ``x-generated-tokens`` give the counts
even without ``details`` (which, when present, wins).
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from orjson import loads

from proxy.stream.base import StreamSummary
from proxy.stream.fields import count, set_finish, set_input, set_output, set_phase

_FINISH = {"eos_token": "stop", "stop_sequence": "stop", "length": "length"}
_QUEUE, _PROMPT, _GENERATED = b"x-queue-time", b"x-prompt-tokens", b"x-generated-tokens"


def on_headers(summary: StreamSummary, headers: Sequence[tuple[bytes, bytes]]) -> None:
    """Read TGI's per-request headers (present on ``/generate`` answers only)."""
    for name, value in headers:
        name = name.lower()
        if name == _QUEUE:
            set_phase(summary, "queue", _number(value), 1e3)
        elif name == _PROMPT:
            set_input(summary, _number(value))
        elif name == _GENERATED:
            set_output(summary, _number(value))


def _number(value: bytes) -> int | float | None:
    """A header's integer, None when it is not one; one too long to be any count or time
    is infinite, for the writers to reject as they reject any impossible number."""
    value = value.strip()
    digits = value[1:] if value[:1] == b"-" else value
    if not digits.isdigit():
        return None
    return int(value) if len(digits) < 20 else float("inf")


def on_sse(summary: StreamSummary, event: bytes, data: bytes) -> int:
    obj = loads(data)
    observer = summary.observer
    if observer is not None:
        observer(obj)
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
    if summary.observer is not None:
        summary.observer(body)
    if body.get("error"):
        set_finish(summary, "error")
        return
    details = body.get("details")
    if details:
        _details(summary, details)


def _details(summary: StreamSummary, details: Any) -> None:
    set_output(summary, details.get("generated_tokens"))
    tokens = count(summary, details.get("input_length"))
    if tokens is None:
        prefill = details.get("prefill")
        if type(prefill) is list and prefill:
            tokens = len(prefill)
    set_input(summary, tokens)
    reason = details.get("finish_reason")
    if reason:
        set_finish(summary, _FINISH.get(reason, "other"))
