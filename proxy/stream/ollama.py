"""Ollama ``/api/chat`` and ``/api/generate``.

Streams are NDJSON, one object per line, the last with ``done: true`` and the counts
(``prompt_eval_count`` in, ``eval_count`` out) and ``done_reason``; a non-streaming
body is that last object with the whole output. A line is a token event when it
carries output: ``message.content``/``message.thinking``/``message.tool_calls`` (chat)
or ``response``/``thinking`` (generate). A line with ``error`` ends the request as
``error``. Ollama omits ``prompt_eval_count`` when the whole prompt came from its
cache; the input count then stays unknown. The ``done`` object's durations, in
nanoseconds, are the phases: ``load_duration`` (loading the model: long on a cold
start), ``prompt_eval_duration`` (prefill) and ``eval_duration`` (decode).
"""

from __future__ import annotations

from typing import Any

from orjson import loads

from proxy.stream.base import StreamSummary
from proxy.stream.fields import set_finish, set_input, set_model, set_output, set_phase

_DONE = {"stop": "stop", "length": "length"}
_PHASES = (("load", "load_duration"), ("prefill", "prompt_eval_duration"), ("decode", "eval_duration"))


def on_line(summary: StreamSummary, line: bytes) -> int:
    return apply(summary, loads(line))


def on_json(summary: StreamSummary, body: Any) -> None:
    apply(summary, body)


def apply(summary: StreamSummary, obj: Any) -> int:
    """Read one line (or a whole non-streaming body); return 1 if it carries output."""
    observer = summary.observer
    if observer is not None:
        observer(obj)
    if summary.model is None:
        set_model(summary, obj.get("model"))
    if obj.get("error"):
        set_finish(summary, "error")
        return 0
    message = obj.get("message")
    if message:
        token = 1 if message.get("content") or message.get("thinking") or message.get("tool_calls") else 0
    else:
        token = 1 if obj.get("response") or obj.get("thinking") else 0
    if obj.get("done"):
        set_input(summary, obj.get("prompt_eval_count"))
        set_output(summary, obj.get("eval_count"))
        set_finish(summary, _DONE.get(obj.get("done_reason"), "other"))
        for phase, field in _PHASES:
            set_phase(summary, phase, obj.get(field), 1e9)
    return token
