"""OpenAI chat completions and completions (``/v1/chat/completions``, ``/v1/completions``).

Streams are SSE ``data:`` events, each a chunk object, ending with ``data: [DONE]``;
vLLM, llama.cpp, SGLang and TGI's OpenAI routes speak the same. A chunk is a token
event when any choice carries output: non-empty ``content``, ``reasoning_content`` or
``reasoning`` (reasoning servers), ``refusal``, tool-call ``arguments``, or a
completion's ``text``. Role-only chunks, empty strings and ``content: null`` are not.

``usage`` may come in a trailing usage-only chunk (``stream_options.include_usage``),
in the finish chunk (llama.cpp), or in every chunk (vLLM's continuous usage): the last
one seen wins, which is the final count in each case. ``usage.prompt_tokens_details.cached_tokens``
and ``usage.completion_tokens_details.reasoning_tokens`` are the cached and reasoning
subsets. llama.cpp adds ``timings`` (its prefill and decode times, and ``cache_n``) to
the finish or usage chunk and the body: read as on its native route. A chunk with an
``error`` object ends the request as ``error``.
"""

from __future__ import annotations

from typing import Any

from orjson import loads

from proxy.stream.base import StreamSummary
from proxy.stream.fields import openai_details, set_finish, set_input, set_model, set_output
from proxy.stream.llamacpp import apply_timings

_DONE = b"[DONE]"
_FINISH = {
    "stop": "stop",
    "length": "length",
    "tool_calls": "tool_calls",
    "function_call": "tool_calls",
    "content_filter": "content_filter",
}
# Delta fields whose non-empty value is generated output, most common first.
_TEXT_FIELDS = ("content", "reasoning_content", "reasoning", "refusal")


def on_sse(summary: StreamSummary, event: bytes, data: bytes) -> int:
    if data.startswith(_DONE):
        return 0
    return apply(summary, loads(data))


def on_json(summary: StreamSummary, body: Any) -> None:
    apply(summary, body)


def apply(summary: StreamSummary, obj: Any) -> int:
    """Read one chunk (or a whole non-streaming response); return 1 if it carries output."""
    observer = summary.observer
    if observer is not None:
        observer(obj)
    if summary.model is None:
        set_model(summary, obj.get("model"))
    usage = obj.get("usage")
    if usage:
        _apply_usage(summary, usage)
    timings = obj.get("timings")
    if timings:
        apply_timings(summary, timings)
    if obj.get("error"):
        set_finish(summary, "error")
    token = 0
    for choice in obj.get("choices") or ():
        delta = choice.get("delta")
        if delta:
            if not token and _has_output(delta):
                token = 1
        elif not token and choice.get("text"):
            token = 1
        reason = choice.get("finish_reason")
        if reason:
            set_finish(summary, _FINISH.get(reason, "other"))
    return token


def _has_output(delta: Any) -> bool:
    for field in _TEXT_FIELDS:
        if delta.get(field):
            return True
    for call in delta.get("tool_calls") or ():
        function = call.get("function")
        if function and function.get("arguments"):
            return True
    call = delta.get("function_call")  # the deprecated single-function form
    return bool(call and call.get("arguments"))


def _apply_usage(summary: StreamSummary, usage: Any) -> None:
    set_input(summary, usage.get("prompt_tokens"))
    set_output(summary, usage.get("completion_tokens"))
    openai_details(summary, usage, "prompt_tokens_details", "completion_tokens_details")
