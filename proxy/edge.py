"""The client-facing HTTP/1.1 edge: uvicorn's httptools protocol with the limits nginx keeps.

uvicorn bounds none of a request head: one connection could send a 168 MB header (RSS
grew by 237 MB and /healthz took 8 s) or 100,000 headers, and all of it was forwarded
upstream. Here, as nginx's ``large_client_header_buffers`` and Envoy's header limits do,
the request line, each header, the whole head and the header count are bounded; the
first limit crossed is answered at once (414 for the line, 431 otherwise) and the
connection closes. A head must also arrive within a deadline (slowloris), request
trailers are dropped (they would otherwise join the headers the relay forwards), and
a Transfer-Encoding other than plain ``chunked``, or one on HTTP/1.0, is refused as
nginx refuses it (501, 400): two framings one hop may read differently are a
smuggling risk.
"""

from __future__ import annotations

import asyncio
import httptools
import orjson
from uvicorn.protocols.http.httptools_impl import HttpToolsProtocol

from proxy.config import HeadLimits

_REASONS = {400: "Bad Request", 408: "Request Timeout", 414: "URI Too Long",
            431: "Request Header Fields Too Large", 501: "Not Implemented"}


class _Refusal(Exception):
    def __init__(self, status: int, message: str, code: str) -> None:
        super().__init__(message)
        self.status = status
        self.code = code


def _refusal_bytes(refusal: _Refusal) -> bytes:
    body = orjson.dumps({"error": {"message": str(refusal), "type": "invalid_request_error", "code": refusal.code}})
    head = (f"HTTP/1.1 {refusal.status} {_REASONS[refusal.status]}\r\ncontent-type: application/json\r\n"
            f"content-length: {len(body)}\r\nconnection: close\r\n\r\n")
    return head.encode("ascii") + body


def _head_refusal(headers: list[tuple[bytes, bytes]], http_version: str, limits: HeadLimits) -> _Refusal | None:
    """The refusal a complete head earns, if any: too many or too large headers, or framing
    two hops could read differently. One pass; the whole head's size was bounded as it came."""
    if len(headers) > limits.max_headers:
        return _Refusal(431, f"more than {limits.max_headers} request headers", "too_many_request_headers")
    codings: list[bytes] = []
    largest = limits.max_header_bytes
    for name, value in headers:
        if len(name) + len(value) > largest:
            return _Refusal(431, f"a request header exceeds {largest} bytes", "request_header_too_large")
        if name == b"transfer-encoding":
            codings += (c.strip().lower() for c in value.split(b","))
    if not codings:
        return None
    if http_version == "1.0":
        return _Refusal(400, "Transfer-Encoding is not allowed on an HTTP/1.0 request", "bad_transfer_encoding")
    if codings != [b"chunked"]:
        return _Refusal(501, "only 'Transfer-Encoding: chunked' is supported", "unsupported_transfer_encoding")
    return None


def edge_protocol(limits: HeadLimits) -> type[HttpToolsProtocol]:
    """uvicorn's httptools protocol, bounded by ``limits`` (see the module docstring)."""

    class EdgeProtocol(HttpToolsProtocol):
        _head_timer: asyncio.TimerHandle | None = None
        _in_head = False  # between a request's first byte and the end of its headers
        _head_bytes = 0
        _refused = False
        _began = False

        def connection_made(self, transport: asyncio.Transport) -> None:  # type: ignore[override]
            super().connection_made(transport)
            self._arm_head_timer()

        def connection_lost(self, exc: Exception | None) -> None:
            self._disarm_head_timer()
            super().connection_lost(exc)

        def data_received(self, data: bytes) -> None:
            if self._refused:
                return
            was_in_head = self._in_head
            before = self._head_bytes
            self._began = False
            self._unset_keepalive_if_required()
            # uvicorn's own data_received, but for a refusal raised in a callback: uvicorn
            # would log "Invalid HTTP request received." and answer 400 for each one, a log
            # line per connection under a header flood.
            try:
                self.parser.feed_data(data)
            except httptools.HttpParserCallbackError as exc:
                if isinstance(exc.__context__, _Refusal):
                    self._refuse(exc.__context__)
                else:
                    self._bad_request()
                return
            except httptools.HttpParserError:
                self._bad_request()
                return
            except httptools.HttpParserUpgrade:
                if self._should_upgrade():
                    self.handle_websocket_upgrade()
                else:
                    self._unsupported_upgrade_warning()
                return
            if self._in_head:
                # httptools holds a header's bytes until the header ends, so a head open
                # before and after this read grew by all of it; one that began here grew
                # by at least its request target and the headers it completed.
                if was_in_head and not self._began:
                    self._head_bytes = before + len(data)
                else:
                    self._head_bytes = len(self.url) + sum(len(n) + len(v) + 4 for n, v in self.headers)
                if self._head_bytes > limits.max_head_bytes:
                    self._refuse(_Refusal(431, f"request head exceeds {limits.max_head_bytes} bytes", "request_head_too_large"))

        def on_message_begin(self) -> None:
            super().on_message_begin()
            self._in_head = self._began = True
            self._head_bytes = 0
            self._arm_head_timer()

        def on_url(self, url: bytes) -> None:
            self.url += url
            if len(self.url) > limits.max_request_line:
                raise _Refusal(414, f"request target exceeds {limits.max_request_line} bytes", "request_uri_too_long")

        def on_headers_complete(self) -> None:
            self._in_head = False
            self._disarm_head_timer()
            refusal = _head_refusal(self.headers, self.parser.get_http_version(), limits)
            if refusal is not None:
                raise refusal
            # The request sees the head's headers only: uvicorn appends a chunked body's
            # trailers to its own list, which the scope no longer shares (trailers are
            # dropped, as nginx and Envoy drop them).
            self.scope["headers"] = list(self.headers)
            super().on_headers_complete()

        def _refuse(self, refusal: _Refusal) -> None:
            self._refused = True
            self._disarm_head_timer()
            if self.transport.is_closing():
                return
            # Behind a response still being sent, an answer now would land inside it.
            if self.cycle is None or self.cycle.response_complete:
                self.transport.write(_refusal_bytes(refusal))
            self.transport.close()

        def _bad_request(self) -> None:
            self._refused = True
            self.logger.warning("Invalid HTTP request received.")
            self.send_400_response("Invalid HTTP request received.")

        def _arm_head_timer(self) -> None:
            if self._head_timer is None:
                self._head_timer = self.loop.call_later(limits.timeout, self._head_timed_out)

        def _disarm_head_timer(self) -> None:
            if self._head_timer is not None:
                self._head_timer.cancel()
                self._head_timer = None

        def _head_timed_out(self) -> None:
            self._head_timer = None
            if self.transport.is_closing():
                return
            if self.cycle is not None and not self.cycle.response_complete:
                # A pipelined head behind a response still streaming: its turn has not come.
                self._arm_head_timer()
                return
            self._refuse(_Refusal(408, "request headers took too long", "request_timeout"))

    return EdgeProtocol
