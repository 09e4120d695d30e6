"""Anthropic Messages (``/v1/messages``).

Streams are SSE with named events: ``message_start`` (model, input usage, the initial
output count), content blocks (``content_block_delta`` with ``text_delta``,
``thinking_delta`` or ``input_json_delta`` is a token event; ``signature_delta`` and
``citations_delta`` are not), ``message_delta`` (the stop reason and the cumulative
output count), ``message_stop``, ``ping`` and ``error``. Unknown events are ignored,
as Anthropic's versioning policy asks of clients. Only events that can carry tokens,
usage or the model are parsed.

Input tokens are ``input_tokens`` plus the cache-creation and cache-read counts: the
API reports the cached part of the prompt separately, and the other formats count the
whole prompt. Cached input is ``cache_read_input_tokens`` alone, the prompt served from
the cache (OpenAI's ``cached_tokens``); tokens written to the cache were processed in
full, so they count as input and not as cached. The API states no reasoning count:
thinking tokens are inside ``output_tokens``.
"""

from __future__ import annotations

from typing import Any

from orjson import loads

from proxy.stream.base import StreamSummary
from proxy.stream.fields import count, set_cached, set_finish, set_input, set_model, set_output
from proxy.stream.sse import MESSAGE

_DELTA_TEXT = {"text_delta": "text", "thinking_delta": "thinking", "input_json_delta": "partial_json"}
_STOP = {
    "end_turn": "stop",
    "stop_sequence": "stop",
    "max_tokens": "length",
    "model_context_window_exceeded": "length",
    "tool_use": "tool_calls",
    "refusal": "content_filter",
}


def on_sse(summary: StreamSummary, event: bytes, data: bytes) -> int:
    if event == b"content_block_delta":
        obj = loads(data)
        if summary.observer is not None:
            summary.observer(obj)
        return _delta(obj.get("delta"))
    if event == b"content_block_start":
        # Only the response checks read it (a tool_use block's name): parsed only for them.
        if summary.observer is not None:
            summary.observer(loads(data))
        return 0
    if event == b"message_start":
        _message_start(summary, loads(data).get("message"))
    elif event == b"message_delta":
        obj = loads(data)
        _usage(summary, obj.get("usage"))
        delta = obj.get("delta")
        if delta:
            _stop(summary, delta.get("stop_reason"))
    elif event == MESSAGE:
        # No ``event:`` line: the type is only in the data.
        obj = loads(data)
        if summary.observer is not None:
            summary.observer(obj)
        kind = obj.get("type")
        if kind == "content_block_delta":
            return _delta(obj.get("delta"))
        if kind == "message_start":
            _message_start(summary, obj.get("message"))
        elif kind == "message_delta":
            _usage(summary, obj.get("usage"))
            _stop(summary, (obj.get("delta") or {}).get("stop_reason"))
        elif kind == "error":
            set_finish(summary, "error")
    return 0


def on_json(summary: StreamSummary, body: Any) -> None:
    if summary.observer is not None:
        summary.observer(body)
    if body.get("type") == "error":
        set_finish(summary, "error")
        return
    _message(summary, body)
    _stop(summary, body.get("stop_reason"))


def _delta(delta: Any) -> int:
    field = _DELTA_TEXT.get(delta.get("type"))
    return 1 if field is not None and delta.get(field) else 0


def _message(summary: StreamSummary, message: Any) -> None:
    if message:
        set_model(summary, message.get("model"))
        _usage(summary, message.get("usage"))


def _message_start(summary: StreamSummary, message: Any) -> None:
    # message_start's output_tokens is provisional (the API sends 1); only the cumulative
    # count in message_delta is exact. A stream cut before message_delta must fall back to
    # counted token events, not report 1.
    if message:
        set_model(summary, message.get("model"))
        usage = message.get("usage")
        if usage:
            _usage(summary, {k: v for k, v in usage.items() if k != "output_tokens"})


def _usage(summary: StreamSummary, usage: Any) -> None:
    if not usage:
        return
    read = count(summary, usage.get("cache_read_input_tokens"))
    tokens = count(summary, usage.get("input_tokens"))
    if tokens is not None:
        written = count(summary, usage.get("cache_creation_input_tokens")) or 0
        set_input(summary, tokens + written + (read or 0))  # the sum is held to the same bound
    if read is not None:
        set_cached(summary, read)
    set_output(summary, usage.get("output_tokens"))


def _stop(summary: StreamSummary, reason: Any) -> None:
    if reason:
        set_finish(summary, _STOP.get(reason, "other"))
