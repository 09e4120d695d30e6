"""A cheap open-loop load generator: asyncio protocols, httptools, a keep-alive pool per run.

The load generator must not be what limits the measurement, so a stream costs one
``data_received`` -> ``feed_data`` -> ``on_body`` per read, one timestamp per read and a
``bytes.count`` for the token marker; no task per chunk and no JSON parsing. Every read
is stamped with ``perf_counter_ns`` as it leaves the kernel; the token events it
completes all get that stamp (what a client sees). A response that is not a stream (a
non-streaming chat answer, embeddings) is one event, stamped when its last byte arrives.
"""

from __future__ import annotations

import asyncio
import socket
from time import perf_counter_ns

import httptools

# Every OpenAI chat token chunk carries this and no other chunk does (the role-only head
# has ``"delta":{"role"``, the finish chunk ``"delta":{}``).
MARKER = b'"delta":{"content":'
_CARRY = len(MARKER) - 1


class Rec:
    """One stream as the client saw it."""

    __slots__ = ("t_sched", "t_send", "t_headers", "t_done", "times", "status", "error", "complete", "measured",
                 "whole", "_tail")

    def __init__(self, t_sched: int, measured: bool, whole: bool = False) -> None:
        # When the open-loop schedule said to send it: latency counts from here, so a
        # load generator that falls behind cannot hide slow responses.
        self.t_sched = t_sched
        self.t_send = 0
        self.t_done = 0
        self.t_headers = 0
        # One entry per token event: the read that completed it.
        self.times: list[int] = []
        self.status = 0
        self.error = ""
        self.complete = False
        # False for prefill streams: they load the path but are not in TTFT statistics.
        self.measured = measured
        # True: the response is one event (its completion), not a stream of token chunks.
        self.whole = whole
        self._tail = b""

    def body(self, data: bytes, now: int) -> None:
        if self.whole:
            return
        joined = self._tail + data if self._tail else data
        n = joined.count(MARKER)
        self._tail = joined[-_CARRY:]
        if n:
            self.times.extend([now] * n)


class _Conn(asyncio.Protocol):
    __slots__ = ("transport", "parser", "rec", "done", "now", "received", "keep_alive", "lost")

    def __init__(self) -> None:
        self.transport: asyncio.Transport | None = None
        self.parser: httptools.HttpResponseParser | None = None
        self.rec: Rec | None = None
        self.done: asyncio.Future[None] | None = None
        self.now = 0
        self.received = False
        self.keep_alive = False
        self.lost = False

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport = transport  # type: ignore[assignment]
        sock = transport.get_extra_info("socket")
        if sock is not None:
            sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)

    def data_received(self, data: bytes) -> None:
        self.now = perf_counter_ns()
        self.received = True
        if self.parser is None:
            return
        try:
            self.parser.feed_data(data)
        except httptools.HttpParserError as exc:
            self._finish(f"bad response: {exc}")

    def connection_lost(self, exc: Exception | None) -> None:
        self.lost = True
        self._finish("connection closed mid-response" if exc is None else f"connection lost: {exc}")

    def on_headers_complete(self) -> None:
        assert self.rec is not None and self.parser is not None
        self.rec.t_headers = self.now
        self.rec.status = self.parser.get_status_code()

    def on_body(self, body: bytes) -> None:
        assert self.rec is not None
        self.rec.body(body, self.now)

    def on_message_complete(self) -> None:
        assert self.rec is not None and self.parser is not None
        self.rec.complete = True
        self.rec.t_done = self.now
        if self.rec.whole:
            self.rec.times.append(self.now)
        self.keep_alive = self.parser.should_keep_alive()
        self._finish("")

    def start(self, rec: Rec, request: bytes, done: asyncio.Future[None]) -> None:
        assert self.transport is not None
        self.rec = rec
        self.done = done
        self.received = False
        self.keep_alive = False
        self.parser = httptools.HttpResponseParser(self)
        rec.t_send = perf_counter_ns()
        self.transport.write(request)

    def _finish(self, error: str) -> None:
        done = self.done
        if done is None:
            return
        self.done = None
        self.parser = None
        if error and self.rec is not None and not self.rec.complete:
            self.rec.error = error
        if not done.done():
            done.set_result(None)


class Client:
    """Streams to one ``host:port``; idle connections are kept and reused newest first.

    ``fresh``: a new connection for every request, closed by the client once the response
    has arrived (what an HTTP client without a pool does: one TCP and HTTP set-up each)."""

    def __init__(self, host: str, port: int, fresh: bool = False) -> None:
        self.host = host
        self.port = port
        self.fresh = fresh
        self.idle: list[_Conn] = []
        self.busy: set[_Conn] = set()

    async def stream(self, request: bytes, rec: Rec) -> None:
        loop = asyncio.get_running_loop()
        for attempt in (0, 1):
            conn = await self._acquire(loop)
            if conn is None:
                rec.error = "connect failed"
                return
            done: asyncio.Future[None] = loop.create_future()
            self.busy.add(conn)
            conn.start(rec, request, done)
            try:
                await done
            finally:
                self.busy.discard(conn)
            # A pooled connection the server closed while idle took nothing: retry once.
            if rec.error and not conn.received and attempt == 0:
                rec.error = ""
                if conn.transport is not None:
                    conn.transport.abort()
                continue
            self._release(conn, rec)
            return

    def _release(self, conn: _Conn, rec: Rec) -> None:
        if self.fresh and conn.transport is not None:
            conn.transport.close()
        elif rec.complete and conn.keep_alive and not conn.lost:
            conn.rec = None
            self.idle.append(conn)
        elif conn.transport is not None:
            conn.transport.abort()

    async def _acquire(self, loop: asyncio.AbstractEventLoop) -> _Conn | None:
        while self.idle:
            conn = self.idle.pop()
            if not conn.lost and conn.transport is not None and not conn.transport.is_closing():
                return conn
        try:
            _, conn = await loop.create_connection(_Conn, self.host, self.port)
        except OSError:
            return None
        return conn

    def abort_all(self) -> None:
        """End the run: drop every connection, in flight or idle (the proxy sees cancellations)."""
        for conn in [*self.busy, *self.idle]:
            if conn.transport is not None:
                conn.transport.abort()
        self.idle.clear()


def chat_request(host: str, port: int, headers: dict[str, str], body: bytes) -> bytes:
    return post_request("/v1/chat/completions", host, port, headers, body)


def post_request(path: str, host: str, port: int, headers: dict[str, str], body: bytes) -> bytes:
    lines = [f"POST {path} HTTP/1.1\r\nHost: {host}:{port}\r\n"
             f"Content-Type: application/json\r\nContent-Length: {len(body)}\r\n"
             "Authorization: Bearer bench-key\r\n"]
    lines += [f"{k}: {v}\r\n" for k, v in headers.items()]
    lines.append("\r\n")
    return "".join(lines).encode("latin-1") + body
