"""Newline-delimited JSON (Ollama's streams): one JSON document per line.

``LineBuffer`` does the framing (``\\n`` line ends, the size limit); a ``\\r`` before
the ``\\n`` is JSON whitespace and needs no handling. Blank lines are skipped, and a
last line without its newline still counts when the body ends.
"""

from __future__ import annotations

from collections.abc import Callable

from proxy.stream.base import StreamSummary
from proxy.stream.lines import DEFAULT_LINE_LIMIT, LineBuffer

# Interprets one line; returns 1 for a token event, else 0. May raise on malformed data.
LineHandler = Callable[[StreamSummary, bytes], int]


class NDJSONTap:
    __slots__ = ("summary", "_lines", "_handler")

    def __init__(self, handler: LineHandler, limit: int = DEFAULT_LINE_LIMIT) -> None:
        self.summary = StreamSummary()
        self._lines = LineBuffer(cr=False, limit=limit)
        self._handler = handler

    def feed(self, chunk: bytes) -> int:
        try:
            lines = self._lines.feed(chunk)
        except Exception:  # a framer bug must not reach the relay
            self.summary.parse_errors += 1
            return 0
        return self._handle(lines)

    def close(self) -> int:
        try:
            line = self._lines.flush()
        except Exception:
            self.summary.parse_errors += 1
            return 0
        return self._handle([line] if line is not None else [])

    def _handle(self, lines: list[bytes]) -> int:
        summary = self.summary
        buffer = self._lines
        if buffer.dropped:
            summary.parse_errors += buffer.dropped
            buffer.dropped = 0
        n = 0
        for line in lines:
            if not line or line.isspace():
                continue
            try:
                n += self._handler(summary, line)
            except Exception:
                summary.parse_errors += 1
        summary.token_events += n
        return n
