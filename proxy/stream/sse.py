"""Server-sent events: an incremental WHATWG framer and the tap that runs a format on it.

The framer follows the HTML standard's event-stream rules: ``\\n``, ``\\r\\n`` and ``\\r``
line ends, a leading BOM, ``:`` comments, ``data`` lines joined with ``\\n``, ``event``
naming the type (default ``message``), dispatch on a blank line, and an event with no
``data`` line not dispatched at all. ``id`` and ``retry`` mean nothing to a meter and
are ignored with every other unknown field, except two deliberate departures:

- ``error: {...}`` lines, which llama.cpp's server sends for errors mid-stream, are
  read as an event of type ``error``;
- at the end of the body, a last event that lacks its closing blank line is still
  dispatched (the standard drops it), so a server that ends without one keeps its
  usage, and a truncated final event shows up as a parse error instead of vanishing.

Event types and data stay ``bytes``: formats compare types against constants and
hand data straight to the JSON parser, so nothing is decoded twice.
"""

from __future__ import annotations

import re
from collections.abc import Callable

from proxy.stream.base import StreamSummary
from proxy.stream.fields import set_finish
from proxy.stream.lines import DEFAULT_LINE_LIMIT, LineBuffer

SSEEvent = tuple[bytes, bytes]
# Interprets one event's data for a wire format; returns 1 for a token event, else 0.
# It may raise on malformed data: the tap counts that as a parse error.
SSEHandler = Callable[[StreamSummary, bytes, bytes], int]

MESSAGE = b"message"
ERROR = b"error"
_BOM = b"\xef\xbb\xbf"


class SSEFramer:
    """Turn response chunks into ``(event_type, data)`` pairs, independent of chunk boundaries."""

    __slots__ = ("dropped", "_lines", "_data", "_data_len", "_event", "_skip_event", "_first", "_limit")

    def __init__(self, limit: int = DEFAULT_LINE_LIMIT) -> None:
        self._lines = LineBuffer(cr=True, limit=limit)
        self._data: list[bytes] = []
        self._data_len = 0
        self._event = b""
        # True after an event's data outgrew the limit, until the blank line ends it.
        self._skip_event = False
        self._first = True
        self._limit = limit
        # Lines and events thrown away for exceeding the limit; the reader resets it.
        self.dropped = 0

    def feed(self, chunk: bytes) -> list[SSEEvent]:
        lines = self._lines.feed(chunk)
        if self._lines.dropped:
            self.dropped += self._lines.dropped
            self._lines.dropped = 0
        if not lines:
            return []
        if self._first:
            self._first = False
            if lines[0].startswith(_BOM):
                lines[0] = lines[0][3:]
        return self._parse(lines)

    def close(self) -> list[SSEEvent]:
        """The body ended: return the events its unterminated tail completes."""
        line = self._lines.flush()
        self.dropped += self._lines.dropped
        self._lines.dropped = 0
        events = self._parse([line]) if line is not None else []
        if self._data:
            events.append(self._dispatch())
        self._event = b""
        self._skip_event = False
        return events

    def _parse(self, lines: list[bytes]) -> list[SSEEvent]:
        events: list[SSEEvent] = []
        for line in lines:
            # Data lines first: they are nearly all of a token stream.
            if line[:6] == b"data: ":
                self._add_data(line[6:])
            elif not line:
                if self._data:
                    events.append(self._dispatch())
                else:
                    self._event = b""
                    self._skip_event = False
            elif line[0] == 58:  # ":" opens a comment (keep-alives)
                continue
            else:
                field, colon, value = line.partition(b":")
                if colon and value[:1] == b" ":
                    value = value[1:]
                if field == b"data":
                    self._add_data(value)
                elif field == b"event":
                    self._event = value
                elif field == ERROR:
                    self._event = ERROR
                    self._add_data(value)
        return events

    def _add_data(self, value: bytes) -> None:
        if self._skip_event:
            return
        self._data_len += len(value) + 1
        if self._data_len > self._limit:
            self.dropped += 1
            self._skip_event = True
            self._data.clear()
            self._data_len = 0
            return
        self._data.append(value)

    def _dispatch(self) -> SSEEvent:
        data = self._data
        event: SSEEvent = (self._event or MESSAGE, data[0] if len(data) == 1 else b"\n".join(data))
        self._data = []
        self._data_len = 0
        self._event = b""
        return event


class SSETap:
    """A tap for any SSE wire format: frames events and hands each to the format's handler.

    An ``error`` event ends the request as ``error`` whatever the format; every other
    event goes to ``handler``, whose exceptions count as parse errors.
    """

    __slots__ = ("summary", "_framer", "_handler")

    def __init__(self, handler: SSEHandler, limit: int = DEFAULT_LINE_LIMIT) -> None:
        self.summary = StreamSummary()
        self._framer = SSEFramer(limit)
        self._handler = handler

    def feed(self, chunk: bytes) -> int:
        try:
            events = self._framer.feed(chunk)
        except Exception:  # a framer bug must not reach the relay
            self.summary.parse_errors += 1
            return 0
        return self._handle(events) if events else self._count_dropped(0)

    def close(self) -> int:
        try:
            events = self._framer.close()
        except Exception:
            self.summary.parse_errors += 1
            return 0
        return self._handle(events)

    def _handle(self, events: list[SSEEvent]) -> int:
        summary = self.summary
        handler = self._handler
        n = 0
        for event, data in events:
            if event == ERROR:
                set_finish(summary, "error")
                continue
            try:
                n += handler(summary, event, data)
            except Exception:
                summary.parse_errors += 1
        summary.token_events += n
        return self._count_dropped(n)

    def _count_dropped(self, n: int) -> int:
        framer = self._framer
        if framer.dropped:
            self.summary.parse_errors += framer.dropped
            framer.dropped = 0
        return n


_EOL = re.compile(rb"\r\n|\r|\n")


class SSEEventSplitter:
    """Cut a byte stream into whole SSE events, bytes unchanged, by the same line-end rules.

    For the one place that rewrites a stream (``--inject-usage``): an event ends at a
    blank line, whichever of ``\n``, ``\r\n`` and ``\r`` end its lines, mixed too
    (``\n\r\n`` is a line end and a blank line). A ``\r`` at the end of a chunk may
    be half of ``\r\n``: it is decided when the next chunk comes. ``pending`` is the size
    of the unfinished event held; bounding it is the caller's choice.
    """

    __slots__ = ("pending", "_buf", "_scan", "_last")

    def __init__(self) -> None:
        self.pending = 0
        # The unfinished event: bytes while it is small, where joining is cheapest; past
        # _GROW_IN_PLACE a bytearray grown in place, as joining would copy all of a long
        # event again on every read.
        self._buf: bytes | bytearray = b""
        self._scan = 0
        # Where the previous line end finished; a line end starting there ends a blank line.
        self._last = 0

    def feed(self, chunk: bytes) -> list[bytes]:
        buf = self._buf
        if not buf:
            buf = chunk
        elif len(buf) < _GROW_IN_PLACE:
            buf += chunk  # bytes: _kept leaves a bytearray only above _GROW_IN_PLACE
        else:
            if type(buf) is bytes:
                buf = bytearray(buf)
            buf += chunk
        events: list[bytes] = []
        start = 0
        last = self._last
        scan = len(buf)
        for match in _EOL.finditer(buf, self._scan):
            begin, end = match.span()
            if end == len(buf) and end - begin == 1 and buf[begin] == 13:
                scan = begin
                break
            if begin == last:
                events.append(buf[start:end])  # type: ignore[arg-type]  # made bytes by _kept
                start = end
            last = end
        self._scan = scan - start
        self._last = last - start
        if type(buf) is bytearray:
            return self._kept(buf, start, events)
        self._buf = rest = buf[start:]
        self.pending = len(rest)
        return events

    def _kept(self, buf: bytearray, start: int, events: list[bytes]) -> list[bytes]:
        """Keep a long event's rest in place (no copy of it); the events it ended, as bytes."""
        del buf[:start]
        self._buf = buf if len(buf) >= _GROW_IN_PLACE else bytes(buf)
        self.pending = len(buf)
        return [bytes(event) for event in events] if events else events

    def close(self) -> bytes:
        """The stream ended: its unterminated tail, if any."""
        rest = bytes(self._buf)
        self._buf = b""
        self.pending = self._scan = self._last = 0
        return rest


_GROW_IN_PLACE = 65536
