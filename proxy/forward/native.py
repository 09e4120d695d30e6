"""The relay's upstream HTTP/1.1 client: asyncio protocol + httptools parser + keep-alive pool.

This module is the transport's boundary: a request goes out (sent once more only when
that is safe), its response comes back as an iterator of body chunks, and every failure
leaves as one of the relay's three errors (``native_failures.mapped``). The wire is in
``native_connection``, the sockets in ``native_pool``.
"""

from __future__ import annotations

import ssl
from collections.abc import AsyncIterator

import httptools

from proxy.config import UpstreamURL
from proxy.forward import policy
from proxy.forward.base import RawHeaders
from proxy.forward.native_connection import Connection, request_head
from proxy.forward.native_failures import Failure, mapped
from proxy.forward.native_pool import Pool


class NativeResponse:
    __slots__ = ("status", "headers", "_conn", "_pool")

    def __init__(self, pool: Pool, conn: Connection) -> None:
        self.status = conn.status
        self.headers = conn.headers
        self._conn: Connection | None = conn
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
                raise mapped(conn.error, self._pool.url, headers_received=True)
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
        origin = UpstreamURL.of(upstream)
        self._prefix = origin.prefix
        self._host_header = f"Host: {origin.authority}\r\n".encode("ascii")
        self.url = origin.url
        self.pool = Pool(origin, connect_timeout, read_timeout, max_connections, ssl_context)

    async def request(self, method: str, target: str, headers: RawHeaders, body: bytes) -> NativeResponse:
        head = request_head(self._prefix, self._host_header, method, target, headers, body)
        try:
            return await self._exchange(method, head, body)
        except (Failure, OSError, httptools.HttpParserError, httptools.HttpParserUpgrade) as exc:
            raise mapped(exc, self.url, headers_received=False) from exc

    async def aclose(self) -> None:
        self.pool.close()

    async def _exchange(self, method: str, head: bytes, body: bytes) -> NativeResponse:
        fresh = False
        while True:
            conn = await self.pool.acquire(fresh)
            try:
                conn.start(head, body, method == "HEAD")
                await conn.wait_headers()
                return NativeResponse(self.pool, conn)
            except Exception:
                conn.abort()
                # A reused connection that ended before a byte of response: the server
                # probably closed it idle as we wrote. Sent once more, on a new connection
                # (which never reads as this), and only if sending it twice is harmless.
                if not conn.nothing_received():
                    raise
                if method not in policy.IDEMPOTENT:
                    raise Failure(policy.not_replayed(self.url, method)) from None
                fresh = True
            except BaseException:
                conn.abort()
                raise
