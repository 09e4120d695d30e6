"""The relay's upstream HTTP/1.1 client: asyncio protocol + httptools parser + keep-alive pool.

This is the proxy's per-chunk cost (DESIGN.md section 11), so the body path is one
``data_received`` -> ``feed_data`` -> ``on_body`` append and at most one future per
wait; no task, timer or buffer is created per chunk. The read timeout is a single
timer per response that re-arms itself lazily from the time of the last read.
"""

from __future__ import annotations

import asyncio
import collections
import socket
import ssl
from collections.abc import AsyncIterator, Callable, Iterator
from contextlib import contextmanager
from typing import cast

import httptools

from proxy.config import UpstreamURL
from proxy.forward.base import RawHeaders
from proxy.forward.errors import UpstreamConnectError, UpstreamError, UpstreamReadError, UpstreamTimeout

# An upstream that never ends its headers must not grow our memory without bound.
_MAX_HEAD_BYTES = 1 << 20
# Unconsumed body bytes past which we stop reading, so a slow client backs up into TCP.
_HIGH_WATER = 1 << 20
# httpx sends ``Content-Length: 0`` for these even when empty; match it so both
# transports put the same bytes on the wire.
_LENGTH_WHEN_EMPTY = frozenset({"POST", "PUT", "PATCH"})
# A request that may be sent again when a reused connection closes without answering:
# a POST replayed is a second generation on the GPU (RFC 9110 section 9.2.2; Go's transport).
_IDEMPOTENT = frozenset({"GET", "HEAD", "OPTIONS", "TRACE"})
# Below the 5 s keep-alive timeout of uvicorn-based servers (vLLM and others): an idle
# connection is dropped before the server drops it, so a POST rarely meets a closing one.
_IDLE_EXPIRY = 4.0


# -- failures -------------------------------------------------------------------------
# Inside the transport a failure is a low-level fact: an OSError or parser error as it
# came, or one of these markers. ``_mapped`` turns each into the relay's three errors,
# once, at the two boundaries (``request`` and ``aiter_raw``), as httpx maps httpcore's.


class _Failure(Exception):
    """A failure the transport itself detected; its text completes "upstream URL ..."."""


class _ConnectTimeout(_Failure):
    pass


class _PoolBusy(_Failure):
    pass


class _HeadTimeout(_Failure):
    pass


class _ReadStall(_Failure):
    pass


class _ClosedByUs(_Failure):
    """We closed the response before its end: whoever still iterates must not take our
    close for the end of a close-delimited body."""


class _Unsolicited(Exception):
    """Bytes after a complete response: no request asked for them (stops the parser)."""


class _ConnectFailed(_Failure):
    pass


def _mapped(exc: BaseException, url: str, headers_received: bool) -> UpstreamError:
    """The one mapping from what went wrong to what the relay answers (502, 504, a cut stream)."""
    if isinstance(exc, UpstreamError):
        return exc
    if isinstance(exc, (_ConnectTimeout, _PoolBusy, _HeadTimeout)):
        return UpstreamTimeout(f"{exc}")
    if isinstance(exc, (_ReadStall, _ClosedByUs)):
        return UpstreamReadError(f"{exc}")
    if isinstance(exc, _Failure):
        return UpstreamConnectError(f"{exc}")
    if headers_received:
        return UpstreamReadError(f"upstream {url} broke off the response: {_describe(exc)}")
    return UpstreamConnectError(f"upstream {url} failed before sending response headers: {_describe(exc)}")


def _request_head(prefix: str, host_header: bytes, method: str, target: str, headers: RawHeaders, body: bytes) -> bytes:
    line = f"{method} {prefix}{target} HTTP/1.1\r\n"
    try:
        first = line.encode("latin-1")
    except UnicodeEncodeError:
        first = line.encode("utf-8")
    parts = [first, host_header]
    for name, value in headers:
        parts += (name, b": ", value, b"\r\n")
    if body or method in _LENGTH_WHEN_EMPTY:
        parts.append(b"Content-Length: %d\r\n\r\n" % len(body))
    else:
        parts.append(b"\r\n")
    return b"".join(parts)


class _Connection(asyncio.Protocol):
    """One keep-alive connection; serves one exchange at a time and is its own parser protocol."""

    __slots__ = (
        "_pool", "_loop", "_time", "_read_timeout", "transport", "_parser", "_timer", "_armed_at",
        "_last_data", "_waiter", "_head_bytes", "_framed", "_is_head", "pending", "paused",
        "status", "headers", "chunks", "headers_done", "complete", "keep_alive", "error",
        "lost", "dirty", "reused", "counted", "idle_since",
    )

    def __init__(self, pool: NativeTransport, loop: asyncio.AbstractEventLoop, read_timeout: float) -> None:
        self._pool = pool
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
                self._fail(_Failure(f"upstream {self._pool.url} sent over {_MAX_HEAD_BYTES} bytes without ending its headers"))
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
        self._pool.connection_lost(self)

    # -- httptools callbacks -----------------------------------------------------------

    def on_message_begin(self) -> None:
        if self.complete:
            # A second response in the same read must never replace the first (its
            # status, its body) nor wait on the connection for the next request: stop
            # parsing, and the connection ends with this exchange.
            self.dirty = True
            raise _Unsolicited()

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
                self._fail(_Failure(f"upstream {self._pool.url} switched protocols, which infermeter cannot relay"))
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
        return self.reused and self._head_bytes == 0 and not isinstance(self.error, _HeadTimeout)

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
            self.error = _ClosedByUs(f"the response from upstream {self._pool.url} was closed before its end")
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
            self._fail(_HeadTimeout(f"upstream {self._pool.url} sent no response headers within {self._read_timeout:g} s"))
            return
        if self._waiter is None:
            return  # nobody is waiting: the next wait re-arms
        deadline = max(self._last_data, self._armed_at) + self._read_timeout
        if self._time() >= deadline:
            self._fail(_ReadStall(f"upstream {self._pool.url} sent nothing for {self._read_timeout:g} s mid-response"))
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


def _describe(error: BaseException | None) -> str:
    if error is None:
        return "connection closed"
    text = str(error)
    return f"{type(error).__name__}: {text}" if text else type(error).__name__


class _NativeResponse:
    __slots__ = ("status", "headers", "_conn", "_pool")

    def __init__(self, pool: NativeTransport, conn: _Connection) -> None:
        self.status = conn.status
        self.headers = conn.headers
        self._conn: _Connection | None = conn
        self._pool = pool

    async def aiter_raw(self) -> AsyncIterator[bytes]:
        conn = self._conn
        if conn is None:
            return
        chunks = conn.chunks
        while True:
            if chunks:
                # Pieces parsed from one read are handed over together; nothing waits for more.
                data = chunks[0] if len(chunks) == 1 else b"".join(chunks)
                chunks.clear()
                conn.pending = 0
                if conn.paused:
                    conn.resume()
                yield data
            elif conn.complete:
                return
            elif conn.error is not None:
                raise _mapped(conn.error, self._pool.url, headers_received=True)
            else:
                await conn.wait_body()

    async def aclose(self) -> None:
        conn = self._conn
        if conn is not None:
            self._conn = None
            self._pool.release(conn)


class NativeTransport:
    """Keep-alive HTTP/1.1 client for one upstream (``proxy.forward.base.Transport``)."""

    def __init__(
        self,
        upstream: UpstreamURL | str,
        connect_timeout: float,
        read_timeout: float,
        max_connections: int = 1024,
        ssl_context: ssl.SSLContext | None = None,
    ) -> None:
        self._upstream = UpstreamURL.of(upstream)
        self._host_header = f"Host: {self._upstream.authority}\r\n".encode("ascii")
        self.url = self._upstream.url
        self._connect_timeout = connect_timeout
        self._read_timeout = read_timeout
        self._max_connections = max_connections
        self._ssl: ssl.SSLContext | None = None
        if self._upstream.scheme == "https":
            self._ssl = ssl_context if ssl_context is not None else ssl.create_default_context()
        self._idle: list[_Connection] = []
        self._open = 0
        self._slot_waiters: collections.deque[asyncio.Future[None]] = collections.deque()
        self._closed = False

    async def request(self, method: str, target: str, headers: RawHeaders, body: bytes) -> _NativeResponse:
        head = _request_head(self._upstream.prefix, self._host_header, method, target, headers, body)
        with self._mapping_failures():
            return await self._exchange(method, head, body)

    async def _exchange(self, method: str, head: bytes, body: bytes) -> _NativeResponse:
        retried = False
        while True:
            conn = await self._acquire(fresh=retried)
            try:
                conn.start(head, body, method == "HEAD")
                await conn.wait_headers()
            except Exception:
                conn.abort()
                if not conn.nothing_received():
                    raise
                if method not in _IDEMPOTENT:
                    raise _Failure(f"upstream {self.url} closed a kept-alive connection without answering; "
                                   f"a {method} is not sent twice") from None
                if retried:
                    raise _Failure(f"upstream {self.url} closed the connection before responding") from None
                retried = True
                continue
            except BaseException:
                conn.abort()
                raise
            return _NativeResponse(self, conn)

    @contextmanager
    def _mapping_failures(self) -> Iterator[None]:
        try:
            yield
        except (_Failure, OSError, httptools.HttpParserError, httptools.HttpParserUpgrade) as exc:
            raise _mapped(exc, self.url, headers_received=False) from exc

    async def aclose(self) -> None:
        self._closed = True
        idle, self._idle = self._idle, []
        for conn in idle:
            conn.abort()

    # -- pool --------------------------------------------------------------------------

    async def _acquire(self, fresh: bool = False) -> _Connection:
        loop = asyncio.get_running_loop()
        deadline = loop.time() + self._connect_timeout
        while True:
            idle = self._idle
            # A retry goes to a new connection: the other idle ones may be just as stale.
            while idle and not fresh:
                conn = idle.pop()  # the most recently used is the least likely to have gone stale
                if conn.lost or conn.transport is None or conn.transport.is_closing():
                    continue
                if loop.time() - conn.idle_since > _IDLE_EXPIRY:
                    conn.abort()
                    continue
                conn.checked_out(reused=True)
                return conn
            if self._open < self._max_connections:
                self._open += 1
                try:
                    conn = await self._connect(loop)
                except BaseException:
                    self._open -= 1
                    self._wake_slot()
                    raise
                if conn.lost:
                    self._open -= 1
                    self._wake_slot()
                    raise _Failure(f"upstream {self.url} closed the connection as it opened")
                conn.checked_out(reused=False)
                return conn
            await self._wait_slot(loop, deadline)

    async def _connect(self, loop: asyncio.AbstractEventLoop) -> _Connection:
        origin = self._upstream
        try:
            _, conn = await asyncio.wait_for(
                loop.create_connection(
                    lambda: _Connection(self, loop, self._read_timeout),
                    origin.host,
                    origin.port,
                    ssl=self._ssl,
                    server_hostname=origin.host if self._ssl is not None else None,
                ),
                self._connect_timeout,
            )
        except asyncio.TimeoutError:
            raise _ConnectTimeout(f"no connection to upstream {self.url} within {self._connect_timeout:g} s") from None
        except OSError as exc:  # refused, unresolvable, unreachable, TLS handshake or certificate failure
            raise _ConnectFailed(f"cannot connect to upstream {self.url}: {_describe(exc)}") from exc
        return conn

    async def _wait_slot(self, loop: asyncio.AbstractEventLoop, deadline: float) -> None:
        remaining = deadline - loop.time()
        if remaining <= 0:
            raise _PoolBusy(f"all {self._max_connections} connections to upstream {self.url} stayed busy for {self._connect_timeout:g} s")
        waiter: asyncio.Future[None] = loop.create_future()
        self._slot_waiters.append(waiter)
        try:
            await asyncio.wait_for(waiter, remaining)
        except asyncio.TimeoutError:
            raise _PoolBusy(f"all {self._max_connections} connections to upstream {self.url} stayed busy for {self._connect_timeout:g} s") from None
        except BaseException:
            # A wake-up meant for us must not be lost with us.
            if waiter.done() and not waiter.cancelled():
                self._wake_slot()
            raise
        finally:
            try:
                self._slot_waiters.remove(waiter)
            except ValueError:
                pass

    def _wake_slot(self) -> None:
        waiters = self._slot_waiters
        while waiters:
            waiter = waiters.popleft()
            if not waiter.done():
                waiter.set_result(None)
                return

    def release(self, conn: _Connection) -> None:
        """A response is done with ``conn``: keep it for the next request only if it is clean."""
        if conn.reusable() and not self._closed and conn.transport is not None and not conn.transport.is_closing():
            conn.park()
            self._idle.append(conn)
            self._wake_slot()
        else:
            conn.abort()

    def connection_lost(self, conn: _Connection) -> None:
        """``conn``'s socket closed: it no longer counts against the pool."""
        if conn.forget():
            self._open -= 1
            try:
                self._idle.remove(conn)
            except ValueError:
                pass
            self._wake_slot()
