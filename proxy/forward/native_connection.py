"""One keep-alive connection to the upstream: the request head out, the response parsed in.

This is the proxy's per-chunk cost (DESIGN.md section 11), so the body path is one
``data_received`` -> ``feed_data`` -> ``on_body`` append and at most one future per
wait; no task, timer or buffer is created per chunk. The read timeout is a single
timer per response that re-arms itself lazily from the time of the last read.
"""

from __future__ import annotations

import asyncio
import socket
from collections.abc import Callable
from typing import cast

import httptools

from proxy.forward import policy
from proxy.forward.base import RawHeaders
from proxy.forward.native_failures import ClosedByUs, Failure, HeadTimeout, ReadStall, Unsolicited

# An upstream that never ends its headers must not grow our memory without bound.
_MAX_HEAD_BYTES = 1 << 20
# Unconsumed body bytes past which we stop reading, so a slow client backs up into TCP.
_HIGH_WATER = 1 << 20
# httpx sends ``Content-Length: 0`` for these even when empty; match it so both
# transports put the same bytes on the wire.
_LENGTH_WHEN_EMPTY = frozenset({"POST", "PUT", "PATCH"})


def request_head(prefix: str, host_header: bytes, method: str, target: str, headers: RawHeaders, body: bytes) -> bytes:
    # The method is an ASCII token, so the line's bytes are the target's.
    parts = [policy.encode_target(f"{method} {prefix}{target} HTTP/1.1\r\n"), host_header]
    for name, value in headers:
        parts += (name, b": ", value, b"\r\n")
    if body or method in _LENGTH_WHEN_EMPTY:
        parts.append(b"Content-Length: %d\r\n\r\n" % len(body))
    else:
        parts.append(b"\r\n")
    return b"".join(parts)


class Connection(asyncio.Protocol):
    """One keep-alive connection; serves one exchange at a time and is its own parser protocol."""

    __slots__ = (
        "_url", "_on_lost", "_loop", "_time", "_read_timeout", "transport", "_parser", "_timer", "_armed_at",
        "_last_data", "_waiter", "_head_bytes", "_framed", "_is_head", "pending", "paused",
        "status", "headers", "chunks", "headers_done", "complete", "keep_alive", "error",
        "lost", "dirty", "reused", "counted", "idle_since",
    )

    def __init__(self, url: str, on_lost: Callable[[Connection], None], loop: asyncio.AbstractEventLoop,
                 read_timeout: float) -> None:
        self._url = url
        # The pool's: its socket closed, so it no longer counts against the pool.
        self._on_lost = on_lost
        self._loop = loop
        self._time: Callable[[], float] = loop.time
        self._read_timeout = read_timeout
        self.transport: asyncio.Transport | None = None
        self._parser: httptools.HttpResponseParser | None = None
        self._timer: asyncio.TimerHandle | None = None
        self._armed_at = 0.0
        self._last_data = 0.0
        self._waiter: asyncio.Future[None] | None = None
        self._head_bytes = 0
        self._framed = False
        self._is_head = False
        self.pending = 0
        self.paused = False
        self.status = 0
        self.headers: RawHeaders = []
        self.chunks: list[bytes] = []
        self.headers_done = False
        self.complete = False
        self.keep_alive = False
        self.error: BaseException | None = None
        self.lost = False
        self.dirty = False
        self.reused = False
        self.counted = False
        self.idle_since = 0.0

    # -- asyncio.Protocol --------------------------------------------------------------

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        # uvloop's transports implement asyncio.Transport without subclassing it.
        self.transport = cast(asyncio.Transport, transport)
        sock = transport.get_extra_info("socket")
        if sock is not None:
            try:
                sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
            except OSError:
                pass

    def data_received(self, data: bytes) -> None:
        parser = self._parser
        if parser is None:
            # Bytes nobody asked for: the connection's framing can no longer be trusted.
            self.dirty = True
            self.abort()
            return
        self._last_data = self._time()
        if not self.headers_done:
            self._head_bytes += len(data)
            if self._head_bytes > _MAX_HEAD_BYTES:
                self._fail(Failure(f"upstream {self._url} sent over {_MAX_HEAD_BYTES} bytes without ending its headers"))
                return
        try:
            parser.feed_data(data)
        except (httptools.HttpParserError, httptools.HttpParserUpgrade) as exc:
            self._fail(exc)
            return
        self.pending += len(data)
        if self.pending > _HIGH_WATER and not self.paused and not self.complete and self.transport is not None:
            self.paused = True
            self.transport.pause_reading()

    def eof_received(self) -> bool | None:
        self.lost = True
        self._closed_by_upstream(None)
        return None

    def connection_lost(self, exc: Exception | None) -> None:
        self.lost = True
        self._closed_by_upstream(exc)
        self._cancel_timer()
        self._on_lost(self)

    # -- httptools callbacks -----------------------------------------------------------

    def on_message_begin(self) -> None:
        if self.complete:
            # A second response in the same read must never replace the first (its
            # status, its body) nor wait on the connection for the next request: stop
            # parsing, and the connection ends with this exchange.
            self.dirty = True
            raise Unsolicited()

    def on_header(self, name: bytes, value: bytes) -> None:
        if self.headers_done:
            return  # trailers: the relay has already sent the head, so they are dropped
        self.headers.append((name, value))
        size = len(name)
        if size == 14 and name.lower() == b"content-length":
            self._framed = True
        elif size == 17 and name.lower() == b"transfer-encoding" and value.rstrip().lower().endswith(b"chunked"):
            self._framed = True

    def on_headers_complete(self) -> None:
        assert self._parser is not None
        status = self._parser.get_status_code()
        if status < 200:
            # Interim responses carry no body (llhttp knows it of every 1xx) and are
            # skipped, as RFC 9110 section 15.2 lets a client; only a switch of protocol
            # cannot be relayed.
            self.headers = []
            self._framed = False
            if status == 101:
                self._fail(Failure(f"upstream {self._url} switched protocols, which infermeter cannot relay"))
            return
        self.status = status
        self.headers_done = True
        if self._is_head:
            self.complete = True
            self.keep_alive = self._parser.should_keep_alive()
        self._wake()

    def on_body(self, body: bytes) -> None:
        if self.complete:
            self.dirty = True  # a body after HEAD
            return
        self.chunks.append(body)
        waiter = self._waiter
        if waiter is not None:
            self._waiter = None
            if not waiter.done():
                waiter.set_result(None)

    def on_message_complete(self) -> None:
        if not self.headers_done or self.complete:
            return  # the end of an interim response, or of a HEAD response's phantom body
        assert self._parser is not None
        self.complete = True
        self.keep_alive = self._parser.should_keep_alive()
        self._wake()

    # -- exchange ----------------------------------------------------------------------

    def start(self, head: bytes, body: bytes, is_head: bool) -> None:
        self._parser = httptools.HttpResponseParser(self)
        self._is_head = is_head
        self._head_bytes = 0
        self._framed = False
        self.status = 0
        self.headers = []
        self.chunks = []
        self.headers_done = self.complete = self.keep_alive = False
        self.error = None
        self.pending = 0
        self._armed_at = self._time()
        self._timer = self._loop.call_at(self._armed_at + self._read_timeout, self._on_timer)
        assert self.transport is not None
        if len(body) <= 65536:
            self.transport.write(head + body)
        else:
            self.transport.write(head)
            self.transport.write(body)

    async def wait_headers(self) -> None:
        while not self.headers_done:
            if self.error is not None:
                raise self.error
            waiter = self._loop.create_future()
            self._waiter = waiter
            await waiter

    def wait_body(self) -> asyncio.Future[None]:
        waiter = self._loop.create_future()
        self._waiter = waiter
        if self._timer is None:
            self._armed_at = self._time()
            self._timer = self._loop.call_at(self._armed_at + self._read_timeout, self._on_timer)
        return waiter

    def checked_out(self, reused: bool) -> None:
        """The pool hands this connection to a request; a new one now counts against it."""
        self.reused = reused
        self.counted = True

    def nothing_received(self) -> bool:
        """No byte of a response arrived: a kept-alive connection the server closed idle."""
        return self.reused and self._head_bytes == 0 and not isinstance(self.error, HeadTimeout)

    def reusable(self) -> bool:
        return self.complete and self.keep_alive and not (self.lost or self.dirty) and self.error is None

    def forget(self) -> bool:
        """True the first time: the pool stops counting this connection."""
        counted, self.counted = self.counted, False
        return counted

    def park(self) -> None:
        """Forget the finished exchange so idle bytes or EOF are seen as such."""
        self.idle_since = self._time()
        self._cancel_timer()
        self._parser = None
        self.chunks = []
        self.headers = []
        self.pending = 0
        if self.paused and self.transport is not None:
            self.paused = False
            self.transport.resume_reading()

    def resume(self) -> None:
        self.paused = False
        if self.transport is not None and not self.transport.is_closing():
            self.transport.resume_reading()

    def abort(self) -> None:
        """Close the socket now, unread bytes and all: this is what stops the model upstream."""
        self._cancel_timer()
        if self._parser is not None and not self.complete and self.error is None:
            # Whoever still iterates must not mistake our own close for the end of a
            # close-delimited body.
            self.error = ClosedByUs(f"the response from upstream {self._url} was closed before its end")
            self._wake()
        if self.transport is not None and not self.transport.is_closing():
            self.transport.abort()

    # -- internals ---------------------------------------------------------------------

    def _closed_by_upstream(self, exc: Exception | None) -> None:
        if self._parser is None or self.complete or self.error is not None:
            return
        if self.headers_done and not self._framed and exc is None:
            self.complete = True  # a close-delimited body ends here
            self.keep_alive = False
        else:
            self.error = exc if exc is not None else ConnectionResetError("upstream closed the connection")
        self._wake()

    def _on_timer(self) -> None:
        self._timer = None
        if self.complete or self.error is not None or self._parser is None:
            return
        if not self.headers_done:
            self._fail(HeadTimeout(policy.head_timeout(self._url, self._read_timeout)))
            return
        if self._waiter is None:
            return  # nobody is waiting: the next wait re-arms
        deadline = max(self._last_data, self._armed_at) + self._read_timeout
        if self._time() >= deadline:
            self._fail(ReadStall(policy.read_stall(self._url, self._read_timeout)))
        else:
            self._timer = self._loop.call_at(deadline, self._on_timer)

    def _fail(self, exc: BaseException) -> None:
        if self.error is None and not self.complete:
            self.error = exc
        self._wake()
        self.abort()

    def _wake(self) -> None:
        waiter = self._waiter
        if waiter is not None:
            self._waiter = None
            if not waiter.done():
                waiter.set_result(None)

    def _cancel_timer(self) -> None:
        if self._timer is not None:
            self._timer.cancel()
            self._timer = None
