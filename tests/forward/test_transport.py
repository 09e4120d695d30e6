"""Response framing and streaming of both upstream transports, over real loopback sockets.

Each test runs for the native (asyncio + httptools) and the httpx transport, each on the
asyncio and the uvloop event loop; the upstream is a scripted raw server sending exact bytes.
"""

from __future__ import annotations

import asyncio
import threading
import time

import pytest

from proxy.forward.errors import UpstreamReadError
from tests.forward.conftest import Env, get, read_all
from tests.support.scripted_upstream import OK, Conn, RawUpstream, serve_forever

pytestmark = pytest.mark.timeout(60)


# -- framing -----------------------------------------------------------------------------


def test_request_bytes_and_content_length_response(env: Env) -> None:
    reply = b"HTTP/1.1 201 Created\r\nContent-Length: 5\r\nX-Dup: a\r\nx-dup: b\r\n\r\nhello"

    async def main() -> None:
        async with env.serving(RawUpstream(then=lambda c: serve_forever(c, reply)), path="/prefix/") as (server, transport):
            headers = [(b"Content-Type", b"application/json"), (b"X-Custom", b"1"), (b"x-custom", b"2")]
            response = await transport.request("POST", "/v1/x?a=1", headers, b'{"a":1}')
            assert response.status == 201
            assert response.headers == [(b"Content-Length", b"5"), (b"X-Dup", b"a"), (b"x-dup", b"b")]
            assert await read_all(response) == b"hello"
        [req] = server.parsed
        assert req.line == b"POST /prefix/v1/x?a=1 HTTP/1.1"
        assert req.header(b"host") == f"127.0.0.1:{server.port}".encode()
        assert req.header(b"content-length") == b"7"
        assert req.body == b'{"a":1}'
        # Nothing added beyond Host and Content-Length, and the client's order kept.
        assert [h for h in req.headers if h[0].lower() not in (b"host", b"content-length")] == headers

    env.run(main())


def test_content_length_only_when_the_method_carries_a_body(env: Env) -> None:
    async def main() -> None:
        async with env.serving(RawUpstream(then=serve_forever)) as (server, transport):
            await get(transport, "/a", "GET")
            await get(transport, "/b", "POST")
            await get(transport, "/c", "GET", b"x")
        get_empty, post_empty, get_body = server.parsed
        assert get_empty.header(b"content-length") is None
        assert post_empty.header(b"content-length") == b"0"
        assert get_body.header(b"content-length") == b"1" and get_body.body == b"x"

    env.run(main())


def test_chunked_with_extensions_and_trailers_then_reuse(env: Env) -> None:
    reply = (
        b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\nTrailer: X-Checksum\r\n\r\n"
        b"4;name=value\r\nWiki\r\n5;flag\r\npedia\r\n0\r\nX-Checksum: abc\r\n\r\n"
    )

    async def main() -> None:
        async with env.serving(RawUpstream(then=lambda c: serve_forever(c, reply))) as (server, transport):
            response = await transport.request("GET", "/", [], b"")
            assert all(name.lower() != b"x-checksum" for name, _ in response.headers)
            assert await read_all(response) == b"Wikipedia"
            assert await get(transport) == (200, b"Wikipedia")
        assert server.accepted == 1

    env.run(main())


def test_close_delimited_body_is_read_to_eof_and_not_reused(env: Env) -> None:
    def script(conn: Conn) -> None:
        conn.read_request()
        conn.send(b"HTTP/1.1 200 OK\r\nContent-Type: text/plain\r\n\r\nfirst ")
        time.sleep(0.05)
        conn.send(b"second")
        conn.close()

    async def main() -> None:
        async with env.serving(RawUpstream(then=script)) as (server, transport):
            assert await get(transport) == (200, b"first second")
            assert await get(transport) == (200, b"first second")
        assert server.accepted == 2

    env.run(main())


def test_http10_response_without_length_is_close_delimited(env: Env) -> None:
    def script(conn: Conn) -> None:
        conn.read_request()
        conn.send(b"HTTP/1.0 200 OK\r\n\r\nold style")
        conn.close()

    async def main() -> None:
        async with env.serving(RawUpstream(then=script)) as (server, transport):
            assert await get(transport) == (200, b"old style")

    env.run(main())


def test_head_has_no_body_and_keeps_the_connection(env: Env) -> None:
    def script(conn: Conn) -> None:
        while req := conn.read_request():
            if req.startswith(b"HEAD "):
                conn.send(b"HTTP/1.1 200 OK\r\nContent-Length: 1000\r\n\r\n")
            else:
                conn.send(OK)

    async def main() -> None:
        async with env.serving(RawUpstream(then=script)) as (server, transport):
            response = await transport.request("HEAD", "/", [], b"")
            assert response.headers == [(b"Content-Length", b"1000")]
            assert await asyncio.wait_for(read_all(response), 2) == b""
            assert await get(transport) == (200, b"ok")
        assert server.accepted == 1

    env.run(main())


@pytest.mark.parametrize("status", [204, 304])
def test_no_body_statuses_keep_the_connection(env: Env, status: int) -> None:
    reply = f"HTTP/1.1 {status} Nothing\r\nETag: x\r\n\r\n".encode()

    async def main() -> None:
        async with env.serving(RawUpstream(then=lambda c: serve_forever(c, reply))) as (server, transport):
            for _ in range(2):
                assert await asyncio.wait_for(get(transport), 2) == (status, b"")
        assert server.accepted == 1

    env.run(main())


def test_interim_responses_are_skipped(env: Env) -> None:
    reply = (
        b"HTTP/1.1 100 Continue\r\n\r\n"
        b"HTTP/1.1 103 Early Hints\r\nLink: </style.css>; rel=preload\r\n\r\n"
        b"HTTP/1.1 200 OK\r\nContent-Length: 4\r\n\r\nbody"
    )

    async def main() -> None:
        async with env.serving(RawUpstream(then=lambda c: serve_forever(c, reply))) as (server, transport):
            response = await transport.request("POST", "/", [], b"{}")
            assert response.status == 200
            assert response.headers == [(b"Content-Length", b"4")]
            assert await read_all(response) == b"body"
            assert await get(transport) == (200, b"body")
        assert server.accepted == 1

    env.run(main())


def test_many_chunks_in_one_read_are_all_delivered(env: Env) -> None:
    pieces = [f"data: {i}\n\n".encode() for i in range(200)]
    reply = b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n"
    reply += b"".join(b"%x\r\n%s\r\n" % (len(p), p) for p in pieces) + b"0\r\n\r\n"

    async def main() -> None:
        async with env.serving(RawUpstream(then=lambda c: serve_forever(c, reply))) as (server, transport):
            assert await get(transport) == (200, b"".join(pieces))

    env.run(main())


def test_large_bodies_both_ways(env: Env) -> None:
    big = bytes(range(256)) * 32768  # 8 MiB: past the native transport's read pause mark
    upload = b"u" * (3 << 20)

    def script(conn: Conn) -> None:
        while req := conn.read_request():
            assert req.endswith(b"\r\n\r\n" + upload)
            conn.send(b"HTTP/1.1 200 OK\r\nContent-Length: %d\r\n\r\n" % len(big) + big)

    async def main() -> None:
        async with env.serving(RawUpstream(then=script)) as (server, transport):
            response = await transport.request("POST", "/", [], upload)
            await asyncio.sleep(0.2)  # let the upstream get ahead of us
            assert await read_all(response) == big
            assert await get(transport, method="POST", body=upload) == (200, big)
        assert server.accepted == 1

    env.run(main())


# -- streaming ---------------------------------------------------------------------------


def test_each_chunk_is_delivered_before_the_next_is_sent(env: Env) -> None:
    seen = [threading.Event() for _ in range(5)]
    late: list[int] = []

    def script(conn: Conn) -> None:
        conn.read_request()
        conn.send(b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n")
        for i, event in enumerate(seen):
            conn.send(b"6\r\nchunk%d\r\n" % i)
            if not event.wait(3):
                late.append(i)
        conn.send(b"0\r\n\r\n")

    async def main() -> None:
        async with env.serving(RawUpstream(then=script)) as (server, transport):
            response = await transport.request("GET", "/", [], b"")
            received = b""
            async for chunk in response.aiter_raw():
                received += chunk
                seen[len(received) // 6 - 1].set()
            await response.aclose()
            assert received == b"".join(b"chunk%d" % i for i in range(5))
        assert late == []

    env.run(main())


def test_aclose_mid_body_closes_the_socket_at_once(env: Env) -> None:
    closed_after: list[float] = []

    def send_part_then_wait(conn: Conn) -> None:
        conn.read_request()
        conn.send(b"HTTP/1.1 200 OK\r\nContent-Length: 1000\r\n\r\nfirst")
        start = time.monotonic()
        if conn.closed_by_peer(5):
            closed_after.append(time.monotonic() - start)

    async def main() -> None:
        async with env.serving(RawUpstream(send_part_then_wait, then=serve_forever)) as (server, transport):
            response = await transport.request("GET", "/", [], b"")
            stream = response.aiter_raw()
            assert await stream.__anext__() == b"first"
            await response.aclose()
            for _ in range(100):
                if closed_after:
                    break
                await asyncio.sleep(0.02)
            assert closed_after and closed_after[0] < 1.0
            assert await get(transport) == (200, b"ok")
        assert server.accepted == 2

    env.run(main())


def test_cancelled_request_closes_the_upstream_connection(env: Env) -> None:
    closed: list[bool] = []

    def script(conn: Conn) -> None:
        conn.read_request()
        closed.append(conn.closed_by_peer(5))

    async def main() -> None:
        async with env.serving(RawUpstream(then=script)) as (server, transport):
            task = asyncio.ensure_future(transport.request("GET", "/", [], b""))
            while not server.requests:
                await asyncio.sleep(0.01)
            task.cancel()
            with pytest.raises(asyncio.CancelledError):
                await task
            for _ in range(100):
                if closed:
                    break
                await asyncio.sleep(0.02)
            assert closed == [True]

    env.run(main())


def test_aclose_from_another_task_ends_a_waiting_iteration(env: Env) -> None:
    """The relay closes the response when the client leaves, while its reader may be waiting."""

    def script(conn: Conn) -> None:
        conn.read_request()
        conn.send(b"HTTP/1.1 200 OK\r\nContent-Type: text/event-stream\r\n\r\ndata: 1\n\n")
        conn.closed_by_peer(10)

    async def main() -> None:
        async with env.serving(RawUpstream(then=script)) as (server, transport):
            response = await transport.request("GET", "/", [], b"")
            chunks: list[bytes] = []

            async def reader() -> None:
                async for chunk in response.aiter_raw():
                    chunks.append(chunk)

            task = asyncio.ensure_future(reader())
            while not chunks:
                await asyncio.sleep(0.01)
            await response.aclose()
            # Not a clean end of this close-delimited body: our close is not the upstream's.
            with pytest.raises(UpstreamReadError):
                await asyncio.wait_for(task, 2)
            assert chunks == [b"data: 1\n\n"]

    env.run(main())
