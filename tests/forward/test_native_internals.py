"""What only the native transport decides: the bytes of its request head, and its pool count."""

from __future__ import annotations

import asyncio
import time

import pytest

import httptools

from proxy.config import ConfigError, UpstreamURL
from proxy.forward import native_failures as failures
from proxy.forward.errors import UpstreamConnectError, UpstreamError, UpstreamReadError, UpstreamTimeout
from proxy.forward.native import NativeTransport
from proxy.forward.native_connection import request_head
from tests.forward.conftest import get, run
from tests.support.scripted_upstream import OK, Conn, RawUpstream, serve_forever

pytestmark = pytest.mark.timeout(60)


@pytest.mark.parametrize(
    ("url", "host", "prefix"),
    [
        ("http://example.com", b"example.com", ""),
        ("http://example.com:80/", b"example.com", ""),
        ("https://example.com:443/api/", b"example.com", "/api"),
        ("https://example.com:8443", b"example.com:8443", ""),
        ("http://10.0.0.5:8000/prefix/v2", b"10.0.0.5:8000", "/prefix/v2"),
        ("http://[fe80::1]:8000", b"[fe80::1]:8000", ""),
        ("http://bücher.example:81", b"xn--bcher-kva.example:81", ""),
    ],
)
def test_upstream_url_parsed_once_for_every_reader(url: str, host: bytes, prefix: str) -> None:
    upstream = UpstreamURL.parse(url)
    assert upstream.authority.encode() == host
    assert upstream.prefix == prefix
    assert UpstreamURL.of(upstream) is upstream


@pytest.mark.parametrize("url", ["ftp://x", "http://", "http://u:p@h", "http://h/?q=1", "http://h:99999"])
def test_upstream_url_rejects_what_cannot_be_relayed_to(url: str) -> None:
    with pytest.raises(ConfigError):
        UpstreamURL.parse(url)


def test_request_head_bytes() -> None:
    host = b"Host: up:8000\r\n"
    head = request_head("/p", host, "POST", "/v1/chat/completions?x=1", [(b"Authorization", b"Bearer k"), (b"X-A", b"1")], b"{}")
    assert head == (
        b"POST /p/v1/chat/completions?x=1 HTTP/1.1\r\nHost: up:8000\r\n"
        b"Authorization: Bearer k\r\nX-A: 1\r\nContent-Length: 2\r\n\r\n"
    )
    assert request_head("/p", host, "GET", "/", [], b"") == b"GET /p/ HTTP/1.1\r\nHost: up:8000\r\n\r\n"
    assert request_head("/p", host, "PUT", "/", [], b"").endswith(b"Content-Length: 0\r\n\r\n")


_LOW_LEVEL: list[tuple[BaseException, bool, type[UpstreamError]]] = [
    (failures.ConnectTimeout("no connection"), False, UpstreamTimeout),
    (failures.PoolBusy("all busy"), False, UpstreamTimeout),
    (failures.HeadTimeout("no headers"), False, UpstreamTimeout),
    (failures.ConnectFailed("refused"), False, UpstreamConnectError),
    (failures.Failure("switched protocols"), False, UpstreamConnectError),
    (ConnectionRefusedError(111, "refused"), False, UpstreamConnectError),
    (ConnectionResetError("reset"), False, UpstreamConnectError),
    (httptools.HttpParserError("bad head"), False, UpstreamConnectError),
    (failures.ReadStall("stalled"), True, UpstreamReadError),
    (failures.ClosedByUs("closed by us"), True, UpstreamReadError),
    (ConnectionResetError("reset"), True, UpstreamReadError),
    (httptools.HttpParserError("bad chunk"), True, UpstreamReadError),
    (OSError("eof"), True, UpstreamReadError),
]


@pytest.mark.parametrize(("failure", "after_headers", "expected"), _LOW_LEVEL)
def test_every_low_level_failure_maps_to_one_upstream_error(failure: BaseException, after_headers: bool,
                                                            expected: type[UpstreamError]) -> None:
    mapped = failures.mapped(failure, "http://up:1", headers_received=after_headers)
    assert type(mapped) is expected
    assert "http://up:1" in str(mapped) or str(failure) in str(mapped)


@pytest.mark.parametrize("loop", ["asyncio", "uvloop"])
def test_pool_count_returns_to_the_idle_connections(loop: str) -> None:
    """Every way a request can end leaves the slot count exact (no leak, no double release)."""

    def script(conn: Conn) -> None:
        while req := conn.read_request():
            if req.startswith(b"GET /ok"):
                conn.send(OK)
            elif req.startswith(b"GET /partial"):
                conn.send(b"HTTP/1.1 200 OK\r\nContent-Length: 100\r\n\r\nabc")
            elif req.startswith(b"GET /drop"):
                conn.close()
                return
            elif req.startswith(b"GET /hang"):
                conn.stop.wait(30)

    async def main() -> None:
        with RawUpstream(then=script) as server:
            transport = NativeTransport(server.url, 2.0, 0.3, 4)
            try:
                assert await get(transport, "/ok") == (200, b"ok")
                response = await transport.request("GET", "/partial", [], b"")
                await response.aclose()  # mid-body: closed, not pooled
                with pytest.raises(UpstreamConnectError):
                    await get(transport, "/drop")  # fresh connection, dropped: no retry
                task = asyncio.ensure_future(transport.request("GET", "/hang", [], b""))
                await asyncio.sleep(0.05)
                task.cancel()
                await asyncio.gather(task, return_exceptions=True)
                response = await transport.request("GET", "/partial", [], b"")
                with pytest.raises(UpstreamReadError):
                    async for _ in response.aiter_raw():
                        pass
                await response.aclose()
                results = await asyncio.gather(*(get(transport, "/ok") for _ in range(8)))
                assert results == [(200, b"ok")] * 8
                await asyncio.sleep(0.1)  # let aborted transports report connection_lost
                assert transport.pool.open == len(transport.pool.idle) <= 4
            finally:
                await transport.aclose()
            await asyncio.sleep(0.05)
            assert transport.pool.open == 0

    run(main(), loop)


def test_idle_connection_that_receives_bytes_is_dropped() -> None:
    def script(conn: Conn) -> None:
        conn.read_request()
        conn.send(OK)
        time.sleep(0.05)
        conn.send(b"HTTP/1.1 200 OK\r\n")  # nobody asked: framing is lost
        serve_forever(conn)

    async def main() -> None:
        with RawUpstream(then=script) as server:
            transport = NativeTransport(server.url, 2.0, 2.0)
            try:
                assert await get(transport) == (200, b"ok")
                await asyncio.sleep(0.2)
                assert await get(transport) == (200, b"ok")
            finally:
                await transport.aclose()
            assert server.accepted == 2

    run(main(), "asyncio")


def test_retry_goes_to_a_new_connection_not_another_idle_one() -> None:
    def serve_once_then_close(conn: Conn) -> None:
        conn.read_request()
        time.sleep(0.05)  # keep both first requests in flight: two connections
        conn.send(OK)
        conn.read_request()  # both go stale the same way (an upstream restart)
        conn.close()

    async def main() -> None:
        with RawUpstream(serve_once_then_close, serve_once_then_close, then=serve_forever) as server:
            transport = NativeTransport(server.url, 2.0, 2.0)
            try:
                assert list(await asyncio.gather(get(transport), get(transport))) == [(200, b"ok")] * 2
                assert await get(transport, "/after") == (200, b"ok")
            finally:
                await transport.aclose()
            assert server.accepted == 3
            assert [r.line for r in server.parsed].count(b"GET /after HTTP/1.1") == 2

    run(main(), "asyncio")
