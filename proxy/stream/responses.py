"""OpenAI Responses API (``/v1/responses``).

Streams are SSE with an ``event:`` line naming each event's type (the data repeats it
as ``type``); there is no ``[DONE]``. Only events that can matter are parsed: the
output deltas (token events when ``delta`` is non-empty) and the lifecycle events
carrying the response object (model, ``usage``, status). The large ``*.done`` and
``output_item`` events, which repeat text already streamed, are skipped unparsed.

The response object ends ``completed`` (stop, or tool_calls when it called a
function), ``incomplete`` (length, or content_filter when that was the reason) or
``failed`` (error); a non-streaming body is that same object. Its ``usage`` has the
cached and reasoning subsets in ``input_tokens_details.cached_tokens`` and
``output_tokens_details.reasoning_tokens``.
"""

from __future__ import annotations

from typing import Any

from orjson import loads

from proxy.stream.base import StreamSummary
from proxy.stream.fields import openai_details, set_finish, set_input, set_model, set_output
from proxy.stream.sse import MESSAGE

_TOKEN_EVENTS = frozenset(
    {
        b"response.output_text.delta",
        b"response.reasoning_text.delta",
        b"response.reasoning_summary_text.delta",
        b"response.function_call_arguments.delta",
        b"response.custom_tool_call_input.delta",
        b"response.refusal.delta",
    }
)
# Lifecycle events and the status their response object has reached.
_STATUS_EVENTS = {
    b"response.created": None,
    b"response.in_progress": None,
    b"response.queued": None,
    b"response.completed": "completed",
    b"response.incomplete": "incomplete",
    b"response.failed": "failed",
}
_TOOL_CALL_ITEMS = frozenset({"function_call", "custom_tool_call"})


def on_sse(summary: StreamSummary, event: bytes, data: bytes) -> int:
    if event in _TOKEN_EVENTS:
        obj = loads(data)
        if summary.observer is not None:
            summary.observer(obj)
        return 1 if obj.get("delta") else 0
    if event == b"response.output_item.added":
        # Only the response checks read it (a tool call's name): parsed only for them.
        if summary.observer is not None:
            summary.observer(loads(data))
        return 0
    if event in _STATUS_EVENTS:
        _apply_response(summary, loads(data).get("response"), _STATUS_EVENTS[event])
        return 0
    if event == MESSAGE:
        # No ``event:`` line: the type is only in the data.
        obj = loads(data)
        if summary.observer is not None:
            summary.observer(obj)
        kind = obj.get("type")
        if type(kind) is not str:
            return 0
        name = kind.encode()
        if name in _TOKEN_EVENTS:
            return 1 if obj.get("delta") else 0
        if name in _STATUS_EVENTS:
            _apply_response(summary, obj.get("response"), _STATUS_EVENTS[name])
        elif kind == "error":
            set_finish(summary, "error")
    return 0


def on_json(summary: StreamSummary, body: Any) -> None:
    if summary.observer is not None:
        summary.observer(body)
    if body.get("error") and body.get("object") != "response":
        set_finish(summary, "error")  # an API error body, not a response object
        return
    _apply_response(summary, body, body.get("status"))


def _apply_response(summary: StreamSummary, response: Any, status: Any) -> None:
    if not response:
        return
    set_model(summary, response.get("model"))
    usage = response.get("usage")
    if usage:
        set_input(summary, usage.get("input_tokens"))
        set_output(summary, usage.get("output_tokens"))
        openai_details(summary, usage, "input_tokens_details", "output_tokens_details")
    if status == "completed":
        called = any(type(item) is dict and item.get("type") in _TOOL_CALL_ITEMS for item in response.get("output") or ())
        set_finish(summary, "tool_calls" if called else "stop")
    elif status == "incomplete":
        details = response.get("incomplete_details") or {}
        set_finish(summary, "content_filter" if details.get("reason") == "content_filter" else "length")
    elif status == "failed":
        set_finish(summary, "error")
    elif status == "cancelled":
        set_finish(summary, "other")
