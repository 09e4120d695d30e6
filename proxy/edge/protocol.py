"""The edge's HTTP/1.1 protocol: uvicorn's httptools protocol, held to nginx's limits."""

from __future__ import annotations

import asyncio
from typing import ClassVar

import httptools
from uvicorn.protocols.http.httptools_impl import HttpToolsProtocol

from proxy.config import HeadLimits
from proxy.edge.refusals import Refusal, check_head, head_too_large, refusal_bytes, target_refusal

# An app that reads the body runs its own --body-timeout from its last read, a loop turn
# after the edge's clock: the edge answers for it only this much later.
APP_GRACE = 1.0


class EdgeProtocol(HttpToolsProtocol):
    """One client connection. uvicorn instantiates the class; ``limits`` configures it
    (``edge_protocol`` binds them in a subclass)."""

    limits: ClassVar[HeadLimits] = HeadLimits()

    # Per-connection state; class values are the defaults, an instance sets its own.
    _head_timer: asyncio.TimerHandle | None = None
    _body_timer: asyncio.TimerHandle | None = None
    _body_seen = 0.0  # loop time of the last read of a body still arriving
    _open = False  # between a request's first byte and its last
    _in_head = False  # between a request's first byte and the end of its headers
    _began = False  # a request began in the read being parsed
    _head_bytes = 0
    _body_left = 0  # Content-Length body bytes not parsed yet (-1: chunked)
    _held = b""  # bytes after a complete request, unparsed until its response is done
    _refused = False

    def connection_made(self, transport: asyncio.Transport) -> None:  # type: ignore[override]
        super().connection_made(transport)
        self._arm_head_timer()

    def connection_lost(self, exc: Exception | None) -> None:
        self._disarm_head_timer()
        self._disarm_body_timer()
        self._held = b""
        super().connection_lost(exc)

    def data_received(self, data: bytes) -> None:
        # uvicorn's data_received cancels the keep-alive timer on any byte, so a bare CRLF
        # every few seconds kept a connection forever; here only a request's first byte
        # does (on_message_begin).
        if self._held or self._refused:
            if not self._refused:
                self._hold(data)
            return
        was_in_head, before = self._in_head, self._head_bytes
        self._began = False
        if not self._feed(data):
            return
        if self._in_head:
            # httptools holds a header's bytes until the header ends, so a head open
            # before and after this read grew by all of it; one that began here grew
            # by at least its request target and the headers it completed.
            if was_in_head and not self._began:
                self._head_bytes = before + len(data)
            else:
                self._head_bytes = len(self.url) + sum(len(n) + len(v) + 4 for n, v in self.headers)
            if self._head_bytes > self.limits.max_head_bytes:
                self._refuse(head_too_large(self.limits))
            else:
                # Armed only for a head that spans reads: most come whole, in one read.
                self._arm_head_timer()
        elif self._open:
            self._body_arrived()

    def _feed(self, data: bytes) -> bool:
        """Parse ``data`` one request at a time: a request that follows a complete one whose
        response is not done yet waits unparsed (nginx's way with pipelining), or one read
        of 250 KB of ``GET /x`` queues 13,000 request cycles. False once the parser stopped."""
        while data:
            if not self._open and self.cycle is not None and not self.cycle.response_complete:
                self._hold(data)
                return True
            if self._body_left > 0:
                cut = self._body_left  # the request ends exactly there
            else:
                cut = _first_head_end(data)
            piece, data = (data, b"") if cut >= len(data) else (data[:cut], data[cut:])
            try:
                self.parser.feed_data(piece)
            except httptools.HttpParserUpgrade as exc:
                if self._should_upgrade():
                    self.handle_websocket_upgrade()
                    return False
                # Served as plain HTTP: the parser stopped at the end of this request, and
                # what came after it is the next one's (uvicorn dropped it, and the client
                # waited for answers that never came).
                self._unsupported_upgrade_warning()
                data = piece[int(exc.args[0]):] + data
            except httptools.HttpParserError as exc:
                self._parse_failed(exc)
                return False
        return True

    def _parse_failed(self, exc: httptools.HttpParserError) -> None:
        # As uvicorn's own data_received, but for a refusal raised in a callback: uvicorn
        # would log "Invalid HTTP request received." and answer 400 for each one, a log
        # line per connection under a header flood.
        if isinstance(exc, httptools.HttpParserCallbackError) and isinstance(exc.__context__, Refusal):
            self._refuse(exc.__context__)
        else:
            self._bad_request()

    def _hold(self, data: bytes) -> None:
        # Reading stops at once: TCP back-pressure holds the rest at the client, so a
        # connection keeps at most the reads that were already under way.
        self._held += data
        self.transport.pause_reading()
        # The held bytes get their turn when the response before them is done; hooked
        # here, not by overriding on_response_complete, so an unpipelined request pays nothing.
        self.cycle.on_response = self._held_turn

    def _held_turn(self) -> None:
        self.on_response_complete()  # uvicorn's: the keep-alive timer, a queued cycle
        if self._held and not self.transport.is_closing():
            held, self._held = self._held, b""
            self.data_received(held)
            if not self._held and not self.transport.is_closing():
                self.transport.resume_reading()

    def on_message_begin(self) -> None:
        super().on_message_begin()
        if self.timeout_keep_alive_task is not None:
            self.timeout_keep_alive_task.cancel()
            self.timeout_keep_alive_task = None
        self._open = self._in_head = self._began = True

    def on_url(self, url: bytes) -> None:
        self.url += url
        if len(self.url) > self.limits.max_request_line:
            raise Refusal(414, f"request target exceeds {self.limits.max_request_line} bytes", "request_uri_too_long")

    def on_headers_complete(self) -> None:
        self._in_head = False
        if self._head_timer is not None:
            self._disarm_head_timer()
        if self.url[:1] != b"/":
            refusal = target_refusal(self.url, self.parser.get_method())
            if refusal is not None:
                raise refusal
        self._body_left = check_head(self.url, self.headers, self.parser, self.limits)
        # The request sees the head's headers only: uvicorn appends a chunked body's
        # trailers to its own list, which the scope no longer shares (trailers are
        # dropped, as nginx and Envoy drop them).
        self.scope["headers"] = list(self.headers)
        super().on_headers_complete()

    def on_body(self, body: bytes) -> None:
        self._body_left -= len(body)
        super().on_body(body)

    def on_message_complete(self) -> None:
        self._open = False
        self._body_left = 0
        self._disarm_body_timer()
        super().on_message_complete()

    def _refuse(self, refusal: Refusal, to_cycle: bool = False) -> None:
        """Answer ``refusal`` and close: for a head, unless the response before it is not
        done (an answer now would land inside or before it); ``to_cycle`` for the request
        whose cycle runs, its response not begun."""
        self._refused = True
        self._held = b""
        self._disarm_head_timer()
        self._disarm_body_timer()
        if self.transport.is_closing():
            return
        if to_cycle or self.cycle is None or self.cycle.response_complete:
            self.transport.write(refusal_bytes(refusal))
        self.transport.close()

    def _bad_request(self) -> None:
        self._refused = True
        self.logger.warning("Invalid HTTP request received.")
        self.send_400_response("Invalid HTTP request received.")

    def _arm_head_timer(self) -> None:
        if self._head_timer is None:
            self._head_timer = self.loop.call_later(self.limits.timeout, self._head_timed_out)

    def _disarm_head_timer(self) -> None:
        if self._head_timer is not None:
            self._head_timer.cancel()
            self._head_timer = None

    def _head_timed_out(self) -> None:
        self._head_timer = None
        if self.transport.is_closing():
            return
        if self.cycle is not None and not self.cycle.response_complete:
            # A head behind a response still streaming: its turn has not come.
            self._arm_head_timer()
            return
        self._refuse(Refusal(408, "request headers took too long", "request_timeout"))

    def _body_arrived(self) -> None:
        # Timed lazily: a read notes the time, the one timer re-arms itself for what is
        # left when it fires, so a body in many reads costs no timer per read.
        self._body_seen = self.loop.time()
        if self._body_timer is None:
            self._body_timer = self.loop.call_later(self.limits.body_timeout, self._body_timed_out)

    def _disarm_body_timer(self) -> None:
        if self._body_timer is not None:
            self._body_timer.cancel()
            self._body_timer = None

    def _body_timed_out(self) -> None:
        """--body-timeout without a byte of a body, whether or not the app reads it: the
        proxy's own paths answer without reading, and a body nobody reads would
        otherwise hold the connection as long as its client trickles it."""
        self._body_timer = None
        cycle = self.cycle
        if self.transport.is_closing() or not self._open or cycle is None:
            return
        idle = self.loop.time() - self._body_seen
        wait = self.limits.body_timeout - idle
        if not cycle.response_started:
            wait += APP_GRACE
        elif not cycle.response_complete:
            wait = self.limits.body_timeout  # its answer is going out: let it finish
        if wait > 0:
            self._body_timer = self.loop.call_later(wait, self._body_timed_out)
        elif cycle.response_complete:
            # Answered already, the rest of the body is being discarded: nothing to say.
            self._refused = True
            self.transport.close()
        else:
            message = f"no request body bytes for {self.limits.body_timeout:g} s"
            self._refuse(Refusal(408, message, "request_timeout"), to_cycle=True)


def _first_head_end(data: bytes) -> int:
    """Where parsing ``data`` must pause to look at the connection again: after its first
    blank line when a second one follows (a head, or a chunked body, ends with one; the
    parser takes no other line ending), else its end. Nearly every read holds one head
    at most and is parsed whole; a second blank line needs a CR after the first, which
    a C-speed scan for one byte rules out in most bodies (JSON escapes CR in strings)."""
    end = data.find(b"\r\n\r\n")
    if end < 0:
        return len(data)
    after = end + 4
    cr = data.find(b"\r", after)
    return len(data) if cr < 0 or data.find(b"\r\n\r\n", cr) < 0 else after


def edge_protocol(limits: HeadLimits) -> type[EdgeProtocol]:
    """The protocol class uvicorn's ``http=`` option takes, bounded by ``limits``."""
    return type("EdgeProtocol", (EdgeProtocol,), {"limits": limits})
