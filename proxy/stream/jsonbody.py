"""A tap for non-streaming JSON bodies: collect the body (up to a bound), parse it at the end.

The body reaches the client chunk by chunk as usual; the tap keeps references to the
chunks, not copies, and joins them once. A body over ``limit`` is not parsed: the tap
lets go of what it holds and counts one parse error, so a huge response cannot pin
memory. A non-streaming response has no token events to time, so ``feed`` and
``close`` always return 0; counts come from the body's usage fields only.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from orjson import loads

from proxy.stream.base import StreamSummary

DEFAULT_BODY_LIMIT = 8 * 1024 * 1024

# Reads a parsed body into the summary. May raise on an unexpected shape.
JSONHandler = Callable[[StreamSummary, Any], None]


class JSONBodyTap:
    __slots__ = ("summary", "_parts", "_size", "_handler", "_limit")

    def __init__(self, handler: JSONHandler, limit: int = DEFAULT_BODY_LIMIT) -> None:
        self.summary = StreamSummary()
        # None once the body outgrew the limit or was parsed.
        self._parts: list[bytes] | None = []
        self._size = 0
        self._handler = handler
        self._limit = limit

    def feed(self, chunk: bytes) -> int:
        parts = self._parts
        if parts is None or not chunk:
            return 0
        self._size += len(chunk)
        if self._size > self._limit:
            self._parts = None
            self.summary.parse_errors += 1
        else:
            parts.append(chunk)
        return 0

    def close(self) -> int:
        parts = self._parts
        self._parts = None
        if not parts:
            return 0
        try:
            self._handler(self.summary, loads(parts[0] if len(parts) == 1 else b"".join(parts)))
        except Exception:
            self.summary.parse_errors += 1
        return 0
