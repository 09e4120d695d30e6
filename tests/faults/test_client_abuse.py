"""Clients that leave early, stall, send too much, or try to turn the relay into something else."""

from __future__ import annotations

import time
from collections.abc import Callable

import httpx
import orjson
import pytest

from tests.faults.probes import Relayed
from tests.support.wait import eventually
from tests.faults.rawclient import chat_request, connect, exchange, read_at_least, read_response, read_until_closed, status_of
from tests.support.scripted_upstream import EVENT, SSE_HEAD, Conn, RawUpstream, chunk
from tests.support.metrics import scrape

StartRelay = Callable[..., Relayed]


def requests_total(relay: Relayed, **labels: str) -> float:
    return scrape(relay.url).get("infermeter_requests_total", **labels)


# -- disconnect at every phase ------------------------------------------------------------


@pytest.mark.parametrize("sent", [0, 500], ids=["before-body", "mid-body"])
def test_disconnect_while_sending_the_body(relay: StartRelay, sent: int) -> None:
    with RawUpstream() as up:
        r = relay(up.url)
        base = r.baseline()
        body = b'{"model": "m", "messages": []}'.ljust(1000)
        with connect(r.port) as sock:
            sock.sendall(chat_request(r.port, body)[: -len(body) + sent])
            time.sleep(0.1)
        assert eventually(lambda: requests_total(r, code="499", outcome="cancelled") == 1)
        assert up.accepted == 0, "nothing may reach the upstream before the body is whole"
        assert status_of(exchange(r.port, chat_request(r.port))) == 200
    r.assert_clean(base, up.port)


def test_disconnect_while_waiting_for_upstream_headers(relay: StartRelay) -> None:
    closed: list[float] = []

    def thinking(conn: Conn) -> None:
        conn.read_request()
        started = time.monotonic()
        if conn.closed_by_peer(5):
            closed.append(time.monotonic() - started)

    with RawUpstream(thinking) as up:
        r = relay(up.url)
        base = r.baseline()
        with connect(r.port) as sock:
            sock.sendall(chat_request(r.port))
            assert eventually(lambda: len(up.requests) == 1 and up.finished == 0)  # read, still thinking
            time.sleep(0.2)
        # The upstream request is closed at once: the model stops working for nobody.
        assert up.wait_finished(1, timeout=3) and closed and closed[0] < 1.5
        assert eventually(lambda: requests_total(r, code="499", outcome="cancelled") == 1)
        assert status_of(exchange(r.port, chat_request(r.port))) == 200
    r.assert_clean(base, up.port)


def test_disconnect_mid_stream_stops_the_upstream(relay: StartRelay) -> None:
    stopped: list[float] = []

    def generating(conn: Conn) -> None:
        conn.read_request()
        conn.send(SSE_HEAD)
        while conn.send(chunk(EVENT)):
            time.sleep(0.01)
        stopped.append(time.monotonic())

    with RawUpstream(generating) as up:
        r = relay(up.url)
        base = r.baseline()
        with connect(r.port) as sock:
            sock.sendall(chat_request(r.port))
            assert EVENT in read_at_least(sock, 1000)
        left = time.monotonic()
        assert up.wait_finished(1, timeout=3) and stopped[0] - left < 1.5
        assert eventually(lambda: requests_total(r, code="200", outcome="cancelled") == 1)
        assert status_of(exchange(r.port, chat_request(r.port))) == 200
    r.assert_clean(base, up.port)


# -- slowloris ----------------------------------------------------------------------------


def test_slowloris_headers_get_408_and_do_not_block_others(relay: StartRelay) -> None:
    with RawUpstream() as up:
        r = relay(up.url, head_timeout=0.6)
        base = r.baseline()
        slow = [connect(r.port) for _ in range(40)]
        try:
            started = time.monotonic()
            for step in range(3):
                for sock in slow:
                    sock.sendall(b"POST /v1/chat/completions HTTP/1.1\r\n" if step == 0 else b"X-a: b\r\n")
                # Meanwhile a well-behaved client is served at once.
                t = time.monotonic()
                assert status_of(exchange(r.port, chat_request(r.port))) == 200
                assert time.monotonic() - t < 1.0
                time.sleep(0.1)
            answers = [read_until_closed(sock, 5) for sock in slow]
            elapsed = time.monotonic() - started
        finally:
            for sock in slow:
                sock.close()
        assert all(closed and status_of(data) == 408 for data, closed in answers)
        assert 0.5 < elapsed < 4
        # A connection that never sends a byte is closed too.
        with connect(r.port) as idle:
            data, closed = read_until_closed(idle, 5)
            assert closed and status_of(data) == 408
        assert up.accepted == 3
    r.assert_clean(base, up.port)


# -- oversized bodies ---------------------------------------------------------------------


def test_declared_oversized_body_is_413_without_reading_it(relay: StartRelay) -> None:
    with RawUpstream() as up:
        r = relay(up.url, max_request_bytes=64 * 1024)
        base = r.baseline()
        with connect(r.port) as sock:
            sock.sendall(b"POST /v1/chat/completions HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\n"
                         b"Content-Length: 104857600\r\n\r\n" + b"x" * 1000)
            # The answer comes before the 100 MB: the client need not send them.
            response = read_response(sock, 5)
        assert status_of(response) == 413
        assert b"connection: close" in response.lower()
        assert orjson.loads(response.split(b"\r\n\r\n", 1)[1])["error"]["code"] == "request_too_large"
        assert up.accepted == 0
        assert requests_total(r, code="413", outcome="rejected") == 1
        assert status_of(exchange(r.port, chat_request(r.port))) == 200
    r.assert_clean(base, up.port)


def test_client_that_sends_it_all_still_reads_the_413(relay: StartRelay) -> None:
    with RawUpstream() as up:
        r = relay(up.url, max_request_bytes=64 * 1024)
        base = r.baseline()
        for size in (100_000, 16 << 20):
            resp = httpx.post(r.url + "/v1/chat/completions", content=b"x" * size, timeout=10)
            assert resp.status_code == 413
        assert up.accepted == 0
    r.assert_clean(base, up.port)


def test_growing_chunked_body_is_cut_off_at_the_limit(relay: StartRelay) -> None:
    with RawUpstream() as up:
        r = relay(up.url, max_request_bytes=64 * 1024)
        base = r.baseline()
        with connect(r.port) as sock:
            sock.sendall(b"POST /v1/chat/completions HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n\r\n")
            sent = 0
            sock.settimeout(5)
            try:
                while sent < 8 << 20:
                    sock.sendall(chunk(b"y" * 16384))
                    sent += 16384
            except OSError:
                pass
            response = read_response(sock, 5)
        assert status_of(response) == 413
        assert sent < 8 << 20, "the relay kept reading past its limit"
        assert up.accepted == 0
        assert requests_total(r, code="413", outcome="rejected") == 1
    r.assert_clean(base, up.port)


# -- bodies passed through untouched -------------------------------------------------------


@pytest.mark.parametrize("body", [
    b'{"model": "m", "messages": [{"role": "user", "content": "unterminated',
    b'\xff\xfe{"model":"\x80\x81","stream":true}',
    b"",
], ids=["invalid-json", "non-utf8", "empty"])
def test_odd_request_bodies_reach_the_upstream_untouched(relay: StartRelay, body: bytes) -> None:
    with RawUpstream() as up:
        r = relay(up.url)
        base = r.baseline()
        assert status_of(exchange(r.port, chat_request(r.port, body))) == 200
        assert up.wait_finished(1)
        assert up.requests[0].split(b"\r\n\r\n", 1)[1] == body
        assert requests_total(r, endpoint="chat_completions", code="200", outcome="completed") == 1
    r.assert_clean(base, up.port)


# -- never an open proxy -------------------------------------------------------------------


def test_absolute_form_goes_to_the_configured_upstream_only(relay: StartRelay) -> None:
    with RawUpstream() as up:
        r = relay(up.url)
        base = r.baseline()
        response = exchange(r.port, b"GET http://evil.invalid:9/steal?x=1 HTTP/1.1\r\nHost: evil.invalid:9\r\n\r\n")
        assert status_of(response) == 200
        assert up.wait_finished(1)
        head = up.requests[0].split(b"\r\n\r\n", 1)[0].split(b"\r\n")
        assert head[0] == b"GET /steal?x=1 HTTP/1.1"
        hosts = [line.split(b":", 1)[1].strip() for line in head[1:] if line.lower().startswith(b"host:")]
        assert hosts == [f"127.0.0.1:{up.port}".encode()]
    r.assert_clean(base, up.port)


def test_connect_is_refused(relay: StartRelay) -> None:
    with RawUpstream() as up:
        r = relay(up.url)
        base = r.baseline()
        with connect(r.port) as sock:
            sock.sendall(b"CONNECT evil.invalid:443 HTTP/1.1\r\nHost: evil.invalid:443\r\n\r\n")
            response, _ = read_until_closed(sock, 2)
        assert 400 <= status_of(response) < 500
        assert b"HTTP/1.1 200" not in response
        assert up.accepted == 0
        assert status_of(exchange(r.port, chat_request(r.port))) == 200
    r.assert_clean(base, up.port)


# -- request smuggling ---------------------------------------------------------------------

SMUGGLED = b"GET /smuggled HTTP/1.1\r\nHost: x\r\n\r\n"


@pytest.mark.parametrize("framing", [
    b"Content-Length: 6\r\nTransfer-Encoding: chunked\r\n",
    b"Transfer-Encoding: chunked\r\nContent-Length: 6\r\n",
    b"Content-Length: 6\r\nContent-Length: 44\r\n",
    b"Transfer-Encoding: xchunked\r\nContent-Length: 6\r\n",
    b"Transfer-Encoding: chunked\r\nTransfer-Encoding: identity\r\n",
    b"Transfer-Encoding: chunked, identity\r\n",
], ids=["cl-te", "te-cl", "two-cl", "xchunked", "two-te", "te-list"])
def test_smuggling_attempts_never_desync_the_upstream(relay: StartRelay, framing: bytes) -> None:
    with RawUpstream() as up:
        r = relay(up.url)
        base = r.baseline()
        attack = b"POST /v1/chat/completions HTTP/1.1\r\nHost: x\r\n" + framing + b"\r\n0\r\n\r\n" + SMUGGLED
        with connect(r.port) as sock:
            sock.sendall(attack)
            answer, _ = read_until_closed(sock, 2)
        # Refused outright, or each request relayed with framing the relay chose itself.
        assert status_of(answer) in (200, 400, 404, 501), answer[:200]
        assert up.wait_finished(up.accepted)
        for request in up.requests:
            head, _, body = request.partition(b"\r\n\r\n")
            lines = [line.lower() for line in head.split(b"\r\n")[1:]]
            assert not any(line.startswith(b"transfer-encoding") for line in lines)
            lengths = [line for line in lines if line.startswith(b"content-length")]
            assert len(lengths) <= 1
            assert SMUGGLED not in body
        assert status_of(exchange(r.port, chat_request(r.port))) == 200
    r.assert_clean(base, up.port)
