"""Opt-in usage injection (``--inject-usage``, DESIGN.md section 4).

For an OpenAI-style stream whose client did not ask for usage, the upstream is asked for
it, and what asking added is taken out again before the client sees it: the final
usage-only event (``"choices":[]``) and the ``"usage":null`` member the server then puts
in every other chunk. The client gets the bytes it would have got without the proxy; the
tap, fed the upstream's bytes, gets exact counts.

Events are forwarded whole, so an event split across reads waits for its end: this is
the one place the proxy holds bytes back, and only when the flag is on.
"""

from __future__ import annotations

import re

import orjson

# The member a server adds to each ordinary chunk once usage is asked for, as OpenAI and
# the servers that follow it write it (with or without spaces).
_USAGE_NULL = re.compile(rb',\s*"usage"\s*:\s*null')
_EVENT_END = re.compile(rb"\r\n\r\n|\n\n|\r\r")
_USAGE_ONLY = re.compile(rb'"choices"\s*:\s*\[\s*\]')


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

    def __init__(self) -> None:
        self._pending = b""

    def feed(self, chunk: bytes) -> bytes:
        data = self._pending + chunk if self._pending else chunk
        end = 0
        out: list[bytes] = []
        for match in _EVENT_END.finditer(data):
            # A lone \r at the very end may be the first half of \r\n: wait for more.
            if match.group() == b"\r\r" and match.end() == len(data):
                break
            out.append(self._event(data[end:match.end()]))
            end = match.end()
        self._pending = data[end:]
        return b"".join(out)

    def close(self) -> bytes:
        rest, self._pending = self._pending, b""
        return self._event(rest) if rest else b""

    @staticmethod
    def _event(event: bytes) -> bytes:
        if b'"usage"' not in event:
            return event
        if _USAGE_ONLY.search(event) and _is_usage_only(event):
            return b""
        return _USAGE_NULL.sub(b"", event)


def _is_usage_only(event: bytes) -> bool:
    for line in event.splitlines():
        if line.startswith(b"data:"):
            try:
                payload = orjson.loads(line[5:])
            except orjson.JSONDecodeError:
                return False
            return isinstance(payload, dict) and payload.get("choices") == [] and bool(payload.get("usage"))
    return False
