"""Incremental line splitting shared by the SSE and NDJSON framers.

Chunks arrive at arbitrary boundaries. ``LineBuffer.feed`` returns the lines completed
by a chunk and keeps only the unfinished tail, so the common case (a chunk that holds
whole lines) costs one ``split`` and no extra copy of the chunk.

A line longer than ``limit`` bytes is dropped and counted in ``dropped`` once; while
its end has not arrived the buffer stores nothing, so a server that never sends a
newline cannot make the proxy hold its body in memory.
"""

from __future__ import annotations

DEFAULT_LINE_LIMIT = 16 * 1024 * 1024

_LF = b"\n"
_CR = b"\r"


class LineBuffer:
    """Split a byte stream into lines, ``\\n``-terminated (and ``\\r\\n``/``\\r`` with ``cr``)."""

    __slots__ = ("dropped", "_buf", "_skip", "_cr", "_pending_cr", "_limit")

    def __init__(self, *, cr: bool, limit: int = DEFAULT_LINE_LIMIT) -> None:
        self.dropped = 0
        self._buf = bytearray()
        # True while the rest of an oversized line is being thrown away.
        self._skip = False
        self._cr = cr
        # The previous chunk ended in "\r": a "\n" opening the next one is the same line end.
        self._pending_cr = False
        self._limit = limit

    def feed(self, chunk: bytes) -> list[bytes]:
        """Return the lines (without terminators) that this chunk completes."""
        if self._cr:
            if self._pending_cr and chunk:
                self._pending_cr = False
                if chunk[0] == 10:
                    chunk = chunk[1:]
            if _CR in chunk:
                self._pending_cr = chunk[-1] == 13
                # Replace "\r\n" first so that one line end does not become two.
                chunk = chunk.replace(b"\r\n", _LF).replace(_CR, _LF)
        parts = chunk.split(_LF)
        rest = parts.pop()
        if parts:
            if self._skip:
                self._skip = False
                del parts[0]
            elif self._buf:
                self._buf += parts[0]
                parts[0] = bytes(self._buf)
                self._buf.clear()
                if len(parts[0]) > self._limit:
                    self.dropped += 1
                    del parts[0]
            if len(chunk) > self._limit:
                kept = [line for line in parts if len(line) <= self._limit]
                self.dropped += len(parts) - len(kept)
                parts = kept
        if rest:
            self._hold(rest)
        return parts

    def flush(self) -> bytes | None:
        """The stream ended: return the unterminated last line, if any."""
        self._pending_cr = False
        if self._skip:
            self._skip = False
            return None
        if not self._buf:
            return None
        line = bytes(self._buf)
        self._buf.clear()
        return line

    def _hold(self, part: bytes) -> None:
        if self._skip:
            return
        if len(self._buf) + len(part) > self._limit:
            self.dropped += 1
            self._skip = True
            self._buf.clear()
            return
        self._buf += part
