"""Opt-in usage injection (``--inject-usage``, DESIGN.md section 4).

For an OpenAI-style stream whose client did not ask for usage, the upstream is asked for
it, and what asking added is taken out again before the client sees it: the final
usage-only event (``"choices":[]``) and the ``"usage":null`` member the server then puts
in every other chunk. The client gets the bytes it would have got without the proxy; the
tap, fed the upstream's bytes, gets exact counts.

Events are forwarded whole, so an event split across reads waits for its end: this is
the one place the proxy holds bytes back, and only when the flag is on. It holds at most
a line's limit (16 MiB, as the taps): an event that grows past it is no usage chunk, so
the stripper gives up on that stream, passes on what it held and every later byte as the
server sent them, and counts one parse error. From there the client may see what the
proxy asked for (``"usage":null`` members, the usage chunk), which beats holding an
event that may never end, with its first byte late by all of it. llama-server puts
its ``timings`` on the last event it sends: the finish chunk without usage, the usage
chunk with it. So the finish chunk is held until the next event shows whether ``timings``
must move back onto it, as the client would have had them.
"""

from __future__ import annotations

import re

import orjson

from proxy.stream.base import StreamSummary
from proxy.stream.lines import DEFAULT_LINE_LIMIT
from proxy.stream.sse import SSEEventSplitter, SSEFramer

# The member a server adds to each ordinary chunk once usage is asked for, as OpenAI and
# the servers that follow it write it (with or without spaces).
_USAGE_NULL = re.compile(rb',\s*"usage"\s*:\s*null')
_USAGE_ONLY = re.compile(rb'"choices"\s*:\s*\[\s*\]')
_FINISHED = re.compile(rb'"finish_reason"\s*:\s*"')
# Members a server puts on its last event whichever that is (llama-server's timings).
_ON_LAST_EVENT = (b"timings",)


def add_include_usage(body: bytes) -> bytes | None:
    """The request body with ``stream_options.include_usage`` set, or None to leave it be."""
    try:
        request = orjson.loads(body)
    except orjson.JSONDecodeError:
        return None
    if not isinstance(request, dict) or request.get("stream") is not True:
        return None
    options = request.get("stream_options")
    if options is None:
        options = {}
    if not isinstance(options, dict) or options.get("include_usage"):
        return None
    request["stream_options"] = {**options, "include_usage": True}
    return orjson.dumps(request)


class UsageStripper:
    """Turns the upstream's stream (with usage) into the one the client asked for."""

    def __init__(self, summary: StreamSummary | None = None, limit: int = DEFAULT_LINE_LIMIT) -> None:
        self._events = SSEEventSplitter()
        self._held = b""  # a finish chunk, until the event after it is seen
        # Where giving up is counted: the request's summary, which the recorder reads.
        self._summary = summary
        self._limit = limit
        self._passing = False  # gave up: every byte from here goes out as it came

    def feed(self, chunk: bytes) -> bytes:
        if self._passing:
            return chunk
        events = self._events.feed(chunk)
        if self._events.pending > self._limit:
            return self._give_up(events)
        if not events:
            return b""
        return b"".join([self._event(event) for event in events])

    def close(self) -> bytes:
        rest = self._events.close()
        out = self._event(rest) if rest else b""
        held, self._held = self._held, b""
        return held + out

    def _give_up(self, events: list[bytes]) -> bytes:
        done = [self._event(event) for event in events]
        self._passing = True
        if self._summary is not None:
            self._summary.parse_errors += 1
        if self._held:
            done.append(self._held)
            self._held = b""
        rest = self._events.close()
        if not done:
            return rest  # the usual case: no second copy of up to the limit
        done.append(rest)
        return b"".join(done)

    def _event(self, event: bytes) -> bytes:
        held, self._held = self._held, b""
        if b'"usage"' not in event:
            return held + event
        if _USAGE_ONLY.search(event) and _is_usage_only(event):
            return _graft(held, event) if held else b""
        event = _USAGE_NULL.sub(b"", event)
        if _FINISHED.search(event):
            self._held = event
            return held
        return held + event


def _graft(finish: bytes, usage_event: bytes) -> bytes:
    """The finish chunk with the members the usage chunk carried in its place (timings)."""
    members = b"".join(b"," + m for m in (_raw_member(usage_event, k) for k in _ON_LAST_EVENT) if m)
    if not members:
        return finish
    end = finish.rfind(b"}")
    return finish[:end] + members + finish[end:] if end >= 0 else finish


def _raw_member(event: bytes, key: bytes) -> bytes | None:
    """``"key":{...}`` as the server wrote it (so its bytes are what the client would get)."""
    start = event.find(b'"' + key + b'"')
    if start < 0:
        return None
    i = event.find(b"{", start)
    if i < 0:
        return None
    depth, in_string, escaped = 0, False, False
    for j in range(i, len(event)):
        c = event[j]
        if in_string:
            if escaped:
                escaped = False
            elif c == 92:  # backslash
                escaped = True
            elif c == 34:
                in_string = False
        elif c == 34:
            in_string = True
        elif c == 123:
            depth += 1
        elif c == 125:
            depth -= 1
            if depth == 0:
                return event[start:j + 1]
    return None


def _is_usage_only(event: bytes) -> bool:
    framer = SSEFramer()
    for _, data in framer.feed(event) + framer.close():
        try:
            payload = orjson.loads(data)
        except orjson.JSONDecodeError:
            return False
        return isinstance(payload, dict) and payload.get("choices") == [] and bool(payload.get("usage"))
    return False
