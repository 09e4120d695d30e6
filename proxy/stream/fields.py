"""Small writers from parsed JSON values into a ``StreamSummary``, shared by the formats.

Servers disagree on details (a null here, a float there), so each writer checks the
type it stores and ignores anything else rather than guessing.
"""

from __future__ import annotations

from typing import Any

from proxy.stream.base import StreamSummary

_INF = float("inf")


def set_model(summary: StreamSummary, value: Any) -> None:
    """Keep the first model name the response states (every chunk repeats it)."""
    if summary.model is None and type(value) is str and value:
        summary.model = value


def set_finish(summary: StreamSummary, reason: str) -> None:
    """Record a finish reason from FINISH_REASONS; an error is final and is not overwritten."""
    if summary.finish_reason != "error":
        summary.finish_reason = reason


def count(value: Any) -> int | None:
    """A token count as the server wrote it: a non-negative int, else None."""
    if type(value) is int and value >= 0:
        return value
    return None


def set_phase(summary: StreamSummary, phase: str, value: Any, per_second: float) -> None:
    """Record a phase (one of PHASES) the server timed, ``value`` in its own unit, of which
    ``per_second`` make a second; anything but a finite non-negative number is ignored."""
    if (type(value) is int or type(value) is float) and 0 <= value < _INF:
        phases = summary.phases
        if phases is None:
            phases = summary.phases = {}
        phases[phase] = value / per_second


def openai_details(summary: StreamSummary, usage: Any, inp: str, out: str) -> None:
    """Cached and reasoning counts from OpenAI-style usage details: ``usage[inp].cached_tokens``
    and ``usage[out].reasoning_tokens`` (``prompt_tokens_details``/``completion_tokens_details``
    in chat, ``input_tokens_details``/``output_tokens_details`` in Responses)."""
    details = usage.get(inp)
    if type(details) is dict:
        tokens = count(details.get("cached_tokens"))
        if tokens is not None:
            summary.cached_input_tokens = tokens
    details = usage.get(out)
    if type(details) is dict:
        tokens = count(details.get("reasoning_tokens"))
        if tokens is not None:
            summary.reasoning_output_tokens = tokens
