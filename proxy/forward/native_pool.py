"""The native transport's keep-alive pool: at most ``max_connections`` sockets to the one
upstream, idle ones reused newest first, and a request that finds them all busy waits for
a slot up to the connect timeout."""

from __future__ import annotations

import asyncio
import collections
import ssl

from proxy.config import UpstreamURL
from proxy.forward import policy
from proxy.forward.native_connection import Connection
from proxy.forward.native_failures import ConnectFailed, ConnectTimeout, Failure, PoolBusy


class Pool:
    def __init__(self, upstream: UpstreamURL, connect_timeout: float, read_timeout: float, max_connections: int,
                 ssl_context: ssl.SSLContext | None) -> None:
        self._upstream = upstream
        self.url = upstream.url
        self._connect_timeout = connect_timeout
        self._read_timeout = read_timeout
        self._max_connections = max_connections
        self._ssl: ssl.SSLContext | None = None
        if upstream.scheme == "https":
            self._ssl = ssl_context if ssl_context is not None else ssl.create_default_context()
        self.idle: list[Connection] = []
        # Connections counted against max_connections: checked out, idle, or opening.
        self.open = 0
        self._slot_waiters: collections.deque[asyncio.Future[None]] = collections.deque()
        self._closed = False

    async def acquire(self, fresh: bool) -> Connection:
        """A connection for one exchange; ``fresh`` skips the idle ones (a retry: the
        others may be just as stale)."""
        loop = asyncio.get_running_loop()
        deadline = loop.time() + self._connect_timeout
        while True:
            idle = self.idle
            while idle and not fresh:
                conn = idle.pop()  # the most recently used is the least likely to have gone stale
                if conn.lost or conn.transport is None or conn.transport.is_closing():
                    continue
                if loop.time() - conn.idle_since > policy.IDLE_EXPIRY:
                    conn.abort()
                    continue
                conn.checked_out(reused=True)
                return conn
            if self.open < self._max_connections:
                return await self._open_one(loop)
            await self._wait_slot(loop, deadline)

    def release(self, conn: Connection) -> None:
        """A response is done with ``conn``: keep it for the next request only if it is clean."""
        if conn.reusable() and not self._closed and conn.transport is not None and not conn.transport.is_closing():
            conn.park()
            self.idle.append(conn)
            self._wake_slot()
        else:
            conn.abort()

    def close(self) -> None:
        self._closed = True
        idle, self.idle = self.idle, []
        for conn in idle:
            conn.abort()

    # -- internals ---------------------------------------------------------------------

    async def _open_one(self, loop: asyncio.AbstractEventLoop) -> Connection:
        self.open += 1
        try:
            conn = await self._connect(loop)
        except BaseException:
            self.open -= 1
            self._wake_slot()
            raise
        if conn.lost:
            self.open -= 1
            self._wake_slot()
            raise Failure(f"upstream {self.url} closed the connection as it opened")
        conn.checked_out(reused=False)
        return conn

    async def _connect(self, loop: asyncio.AbstractEventLoop) -> Connection:
        origin = self._upstream
        try:
            _, conn = await asyncio.wait_for(
                loop.create_connection(
                    lambda: Connection(self.url, self._connection_lost, loop, self._read_timeout),
                    origin.host,
                    origin.port,
                    ssl=self._ssl,
                    server_hostname=origin.host if self._ssl is not None else None,
                ),
                self._connect_timeout,
            )
        except asyncio.TimeoutError:
            raise ConnectTimeout(policy.connect_timeout(self.url, self._connect_timeout)) from None
        except OSError as exc:  # refused, unresolvable, unreachable, TLS handshake or certificate failure
            raise ConnectFailed(policy.cannot_connect(self.url, exc)) from exc
        return conn

    async def _wait_slot(self, loop: asyncio.AbstractEventLoop, deadline: float) -> None:
        remaining = deadline - loop.time()
        if remaining <= 0:
            raise self._busy()
        waiter: asyncio.Future[None] = loop.create_future()
        self._slot_waiters.append(waiter)
        try:
            await asyncio.wait_for(waiter, remaining)
        except asyncio.TimeoutError:
            raise self._busy() from None
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

    def _busy(self) -> PoolBusy:
        return PoolBusy(policy.pool_busy(self.url, self._max_connections, self._connect_timeout))

    def _wake_slot(self) -> None:
        waiters = self._slot_waiters
        while waiters:
            waiter = waiters.popleft()
            if not waiter.done():
                waiter.set_result(None)
                return

    def _connection_lost(self, conn: Connection) -> None:
        """``conn``'s socket closed: it no longer counts against the pool."""
        if conn.forget():
            self.open -= 1
            try:
                self.idle.remove(conn)
            except ValueError:
                pass
            self._wake_slot()
