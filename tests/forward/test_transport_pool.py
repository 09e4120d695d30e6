"""Connection reuse, retries, timeouts, failures and TLS of both upstream transports.

Same matrix and scripted upstreams as test_transport.py.
"""

from __future__ import annotations

import asyncio
import socket
import time
from pathlib import Path

import pytest

from proxy.forward.errors import (
    UpstreamConnectError,
    UpstreamReadError,
    UpstreamTimeout,
)
from tests.forward.conftest import Env, get, read_all
from tests.support.scripted_upstream import OK, Conn, RawUpstream, self_signed_tls, serve_forever
from tests.support.servers import free_port

pytestmark = pytest.mark.timeout(60)


# -- connection reuse --------------------------------------------------------------------


def test_keep_alive_reuses_one_connection(env: Env) -> None:
    async def main() -> None:
        async with env.serving(RawUpstream(then=serve_forever)) as (server, transport):
            for _ in range(3):
                assert await get(transport) == (200, b"ok")
        assert server.accepted == 1

    env.run(main())


def test_connection_close_from_upstream_is_honoured(env: Env) -> None:
    reply = b"HTTP/1.1 200 OK\r\nContent-Length: 2\r\nConnection: close\r\n\r\nok"

    def script(conn: Conn) -> None:
        conn.read_request()
        conn.send(reply)
        # Keep our end open: the client must close because it was told to, not because we did.
        conn.closed_by_peer(5)

    async def main() -> None:
        async with env.serving(RawUpstream(then=script)) as (server, transport):
            assert await get(transport) == (200, b"ok")
            assert await get(transport) == (200, b"ok")
        assert server.accepted == 2

    env.run(main())


def test_connection_closed_while_idle_is_replaced(env: Env) -> None:
    def script(conn: Conn) -> None:
        conn.read_request()
        conn.send(OK)
        conn.close()  # an idle timeout on the upstream's side

    async def main() -> None:
        async with env.serving(RawUpstream(then=script)) as (server, transport):
            assert await get(transport) == (200, b"ok")
            await asyncio.sleep(0.1)
            assert await get(transport) == (200, b"ok")
        assert server.accepted == 2
        assert len(server.requests) == 2

    env.run(main())


def _serve_once_then_close_on_the_next() -> RawUpstream:
    def serve_once_then_close(conn: Conn) -> None:
        conn.read_request()
        conn.send(OK)
        conn.read_request()  # the upstream's idle close races our second request
        conn.close()
    return RawUpstream(serve_once_then_close, then=serve_forever)


def test_reused_connection_closed_before_any_response_retries_an_idempotent_request_once(env: Env) -> None:
    async def main() -> None:
        async with env.serving(_serve_once_then_close_on_the_next()) as (server, transport):
            assert await get(transport, "/one") == (200, b"ok")
            assert await get(transport, "/two") == (200, b"ok")
        assert server.accepted == 2
        assert [r.line for r in server.parsed] == [b"GET /one HTTP/1.1", b"GET /two HTTP/1.1", b"GET /two HTTP/1.1"]

    env.run(main())


def test_reused_connection_closed_before_any_response_never_sends_a_post_twice(env: Env) -> None:
    # The server may have started generating before it closed: a replay is a second generation.
    async def main() -> None:
        async with env.serving(_serve_once_then_close_on_the_next()) as (server, transport):
            assert await get(transport, "/one") == (200, b"ok")
            with pytest.raises(UpstreamConnectError):
                await get(transport, "/two", "POST", b"{}")
        assert server.accepted == 1
        assert [r.line for r in server.parsed] == [b"GET /one HTTP/1.1", b"POST /two HTTP/1.1"]

    env.run(main())


def test_no_retry_once_the_response_began(env: Env, request: pytest.FixtureRequest) -> None:
    if env.client == "httpx":
        # httpcore reports a partial status line then EOF exactly as it reports no
        # response at all, so the httpx fallback retries an idempotent request here (a
        # known, documented gap; a POST is never retried).
        request.applymarker(pytest.mark.xfail(strict=True, reason="httpcore cannot tell a partial head from none"))

    def serve_once_then_break_off(conn: Conn) -> None:
        conn.read_request()
        conn.send(OK)
        conn.read_request()
        conn.send(b"HTTP/1.1 200 OK\r\n")
        conn.close()

    async def main() -> None:
        async with env.serving(RawUpstream(serve_once_then_break_off, then=serve_forever)) as (server, transport):
            assert await get(transport) == (200, b"ok")
            with pytest.raises(UpstreamConnectError):
                await get(transport, method="GET")
        assert server.accepted == 1

    env.run(main())


def test_no_retry_on_a_fresh_connection(env: Env) -> None:
    def script(conn: Conn) -> None:
        conn.read_request()
        conn.close()

    async def main() -> None:
        async with env.serving(RawUpstream(then=script)) as (server, transport):
            with pytest.raises(UpstreamConnectError):
                await get(transport)
        assert server.accepted == 1

    env.run(main())


def test_cookies_are_never_replayed(env: Env) -> None:
    reply = b"HTTP/1.1 200 OK\r\nSet-Cookie: session=alice; Path=/\r\nContent-Length: 2\r\n\r\nok"

    async def main() -> None:
        async with env.serving(RawUpstream(then=lambda c: serve_forever(c, reply))) as (server, transport):
            await get(transport)
            await get(transport)
        assert all(r.header(b"cookie") is None for r in server.parsed)

    env.run(main())


def test_max_connections_queues_requests(env: Env) -> None:
    def script(conn: Conn) -> None:
        while conn.read_request():
            time.sleep(0.05)
            conn.send(OK)

    async def main() -> None:
        async with env.serving(RawUpstream(then=script), max_connections=1) as (server, transport):
            results = await asyncio.gather(*(get(transport) for _ in range(4)))
            assert results == [(200, b"ok")] * 4
        assert server.accepted == 1

    env.run(main())


def test_waiting_for_a_busy_pool_times_out(env: Env) -> None:
    def script(conn: Conn) -> None:
        conn.read_request()
        conn.send(b"HTTP/1.1 200 OK\r\nContent-Length: 10\r\n\r\n12")
        conn.closed_by_peer(10)

    async def main() -> None:
        async with env.serving(RawUpstream(then=script), max_connections=1, connect_timeout=0.3) as (server, transport):
            held = await transport.request("GET", "/", [], b"")
            with pytest.raises(UpstreamTimeout):
                await transport.request("GET", "/", [], b"")
            await held.aclose()

    env.run(main())


def test_transport_aclose_closes_idle_connections(env: Env) -> None:
    closed: list[bool] = []

    def script(conn: Conn) -> None:
        conn.read_request()
        conn.send(OK)
        closed.append(conn.closed_by_peer(5))

    async def main() -> None:
        with RawUpstream(then=script) as server:
            transport = env.transport(server.url)
            assert await get(transport) == (200, b"ok")
            await transport.aclose()
            for _ in range(100):
                if closed:
                    break
                await asyncio.sleep(0.02)
        assert closed == [True]

    env.run(main())


# -- failures ----------------------------------------------------------------------------


def test_connection_refused(env: Env) -> None:
    async def main() -> None:
        transport = env.transport(f"http://127.0.0.1:{free_port()}")
        try:
            with pytest.raises(UpstreamConnectError):
                await transport.request("GET", "/", [], b"")
        finally:
            await transport.aclose()

    env.run(main())


def test_connect_timeout(env: Env) -> None:
    # A listener whose one-slot backlog is full drops further SYNs, so connect hangs.
    with socket.socket() as listener, socket.socket() as filler:
        listener.bind(("127.0.0.1", 0))
        listener.listen(0)
        filler.connect(listener.getsockname())

        async def main() -> None:
            transport = env.transport(f"http://127.0.0.1:{listener.getsockname()[1]}", connect_timeout=0.3)
            try:
                start = time.monotonic()
                with pytest.raises(UpstreamTimeout):
                    await transport.request("GET", "/", [], b"")
                assert 0.25 < time.monotonic() - start < 5
            finally:
                await transport.aclose()

        env.run(main())


def test_no_headers_within_the_read_timeout(env: Env) -> None:
    def script(conn: Conn) -> None:
        conn.read_request()
        conn.send(b"HTTP/1.1 200 OK\r\n")  # a trickle is not a response
        conn.stop.wait(30)

    async def main() -> None:
        async with env.serving(RawUpstream(then=script), read_timeout=0.3) as (server, transport):
            start = time.monotonic()
            with pytest.raises(UpstreamTimeout):
                await transport.request("GET", "/", [], b"")
            assert 0.25 < time.monotonic() - start < 5

    env.run(main())


def test_stall_mid_body_is_a_read_error(env: Env) -> None:
    def script(conn: Conn) -> None:
        conn.read_request()
        conn.send(b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n5\r\nfirst\r\n")
        conn.stop.wait(30)

    async def main() -> None:
        async with env.serving(RawUpstream(then=script), read_timeout=0.3) as (server, transport):
            response = await transport.request("GET", "/", [], b"")
            chunks: list[bytes] = []
            start = time.monotonic()
            with pytest.raises(UpstreamReadError):
                async for chunk in response.aiter_raw():
                    chunks.append(chunk)
            assert chunks == [b"first"]
            assert 0.2 < time.monotonic() - start < 5
            await response.aclose()

    env.run(main())


def test_slow_but_steady_body_is_not_a_stall(env: Env) -> None:
    def script(conn: Conn) -> None:
        conn.read_request()
        conn.send(b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n")
        for _ in range(8):
            time.sleep(0.1)
            conn.send(b"1\r\nx\r\n")
        conn.send(b"0\r\n\r\n")

    async def main() -> None:
        async with env.serving(RawUpstream(then=script), read_timeout=0.4) as (server, transport):
            assert await get(transport) == (200, b"x" * 8)

    env.run(main())


@pytest.mark.parametrize("how", ["reset", "eof"])
def test_upstream_breaks_mid_body(env: Env, how: str) -> None:
    def script(conn: Conn) -> None:
        conn.read_request()
        conn.send(b"HTTP/1.1 200 OK\r\nContent-Length: 100\r\n\r\npartial")
        time.sleep(0.1)
        if how == "reset":
            conn.reset()
        else:
            conn.close()

    async def main() -> None:
        async with env.serving(RawUpstream(then=script)) as (server, transport):
            response = await transport.request("GET", "/", [], b"")
            chunks: list[bytes] = []
            with pytest.raises(UpstreamReadError):
                async for chunk in response.aiter_raw():
                    chunks.append(chunk)
            assert b"".join(chunks) == b"partial"
            await response.aclose()

    env.run(main())


def test_malformed_responses(env: Env) -> None:
    def script(conn: Conn) -> None:
        req = conn.read_request()
        assert req
        if req.startswith(b"GET /head"):
            conn.send(b"HTTP/1.1 abc Broken\r\n\r\n")
        else:
            conn.send(b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n3\r\nabc\r\nZZ\r\n")
        conn.stop.wait(30)

    async def main() -> None:
        async with env.serving(RawUpstream(then=script), read_timeout=3) as (server, transport):
            with pytest.raises(UpstreamConnectError):
                await transport.request("GET", "/head", [], b"")
            response = await transport.request("GET", "/body", [], b"")
            with pytest.raises(UpstreamReadError):
                await read_all(response)

    env.run(main())


# -- TLS ---------------------------------------------------------------------------------


def test_tls_upstream(env: Env, tmp_path: Path) -> None:
    tls = self_signed_tls(tmp_path)

    async def main() -> None:
        with RawUpstream(then=serve_forever, ssl_context=tls.server) as server:
            assert server.url.startswith("https://")
            transport = env.transport(server.url, ssl_context=tls.client)
            try:
                assert await get(transport) == (200, b"ok")
                assert await get(transport) == (200, b"ok")
            finally:
                await transport.aclose()
            assert server.accepted == 1
            untrusting = env.transport(server.url)  # the system trust store knows nothing of it
            try:
                with pytest.raises(UpstreamConnectError):
                    await get(untrusting)
            finally:
                await untrusting.aclose()

    env.run(main())


def test_tls_close_delimited_body(env: Env, tmp_path: Path) -> None:
    tls = self_signed_tls(tmp_path)

    def script(conn: Conn) -> None:
        conn.read_request()
        conn.send(b"HTTP/1.1 200 OK\r\n\r\nuntil the end")
        conn.close()  # sends TLS close_notify, then FIN

    async def main() -> None:
        async with env.serving(RawUpstream(then=script, ssl_context=tls.server), ssl_context=tls.client) as (server, transport):
            assert await get(transport) == (200, b"until the end")

    env.run(main())


# -- addressing and protocol edges -------------------------------------------------------


def test_ipv6_upstream_gets_a_bracketed_host(env: Env) -> None:
    async def main() -> None:
        async with env.serving(RawUpstream(then=serve_forever, host="::1"), path="/base") as (server, transport):
            assert await get(transport, "/v1/models") == (200, b"ok")
        [req] = server.parsed
        assert req.line == b"GET /base/v1/models HTTP/1.1"
        assert req.header(b"host") == f"[::1]:{server.port}".encode()

    env.run(main())


def test_unrequested_protocol_switch_is_refused(env: Env) -> None:
    reply = b"HTTP/1.1 101 Switching Protocols\r\nConnection: upgrade\r\nUpgrade: websocket\r\n\r\n"

    async def main() -> None:
        async with env.serving(RawUpstream(then=lambda c: serve_forever(c, reply))) as (server, transport):
            with pytest.raises(UpstreamConnectError):
                await get(transport)

    env.run(main())
