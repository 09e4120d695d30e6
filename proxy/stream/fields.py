"""Small writers from parsed JSON values into a ``StreamSummary``, shared by the formats.

Servers disagree on details (a null here, a float there), so each writer checks the
type it stores and ignores anything else rather than guessing.
"""

from __future__ import annotations

from typing import Any

from proxy.stream.base import StreamSummary


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
