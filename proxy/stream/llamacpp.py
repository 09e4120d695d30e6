"""llama.cpp's native ``/completion``.

The stream is SSE ``data:`` events ``{"content": ..., "stop": false}``, a token event
when ``content`` is non-empty; the last has ``stop: true`` with ``model``,
``tokens_predicted`` (out), ``tokens_evaluated`` (in) and ``stop_type`` (``eos`` or
``word``: stop; ``limit``: length). Servers older than ``stop_type`` send
``stopped_eos``/``stopped_word``/``stopped_limit`` flags instead. Errors arrive as an
``error:`` line, which the SSE framer reports as an ``error`` event. A non-streaming
body is the final object with the whole output.

The final object's ``timings`` (also in the finish or usage chunk of llama.cpp's OpenAI
routes) are the server's own clock: ``prompt_ms`` is the prefill, ``predicted_ms`` the
decode, and ``cache_n`` (newer servers) the prompt tokens reused from the slot's cache.
"""

from __future__ import annotations

from typing import Any

from orjson import loads

from proxy.stream.base import StreamSummary
from proxy.stream.fields import set_cached, set_finish, set_input, set_model, set_output, set_phase

_STOP_TYPE = {"eos": "stop", "word": "stop", "limit": "length"}


def on_sse(summary: StreamSummary, event: bytes, data: bytes) -> int:
    return apply(summary, loads(data))


def on_json(summary: StreamSummary, body: Any) -> None:
    apply(summary, body)


def apply(summary: StreamSummary, obj: Any) -> int:
    """Read one event (or a whole non-streaming body); return 1 if it carries output."""
    observer = summary.observer
    if observer is not None:
        observer(obj)
    if obj.get("error"):
        set_finish(summary, "error")
        return 0
    if obj.get("stop"):
        set_model(summary, obj.get("model"))
        set_output(summary, obj.get("tokens_predicted"))
        set_input(summary, obj.get("tokens_evaluated"))
        set_finish(summary, _finish(obj))
        timings = obj.get("timings")
        if timings:
            apply_timings(summary, timings)
    return 1 if obj.get("content") else 0


def apply_timings(summary: StreamSummary, timings: Any) -> None:
    """Phases and cached prompt tokens from llama-server's ``timings`` object."""
    set_phase(summary, "prefill", timings.get("prompt_ms"), 1e3)
    set_phase(summary, "decode", timings.get("predicted_ms"), 1e3)
    if summary.cached_input_tokens is None:
        # usage.prompt_tokens_details.cached_tokens, where the server sends it, says the
        # same and wins; /completion has only this.
        set_cached(summary, timings.get("cache_n"))


def _finish(obj: Any) -> str:
    stop_type = obj.get("stop_type")
    if stop_type is not None:
        return _STOP_TYPE.get(stop_type, "other")
    if obj.get("stopped_eos") or obj.get("stopped_word"):
        return "stop"
    return "length" if obj.get("stopped_limit") else "other"
