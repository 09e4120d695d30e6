"""What any client can send at the edge: bounded heads, no trailer injection, strict framing.

nginx refuses request heads past 8-64 KB and Envoy past 60 KB / 100 headers; a proxy in
their place must do the same, at once, without buffering the excess or slowing others.
"""

from __future__ import annotations

import resource
import socket
import threading
import time
from collections.abc import Callable

import orjson

from tests.faults.probes import Relayed
from tests.support.wait import eventually
from tests.faults.rawclient import CHAT, chat_request, connect, exchange, read_response, read_until_closed, status_of
from tests.support.scripted_upstream import RawUpstream
from tests.support.metrics import scrape

StartRelay = Callable[..., Relayed]


def _send_until_refused(port: int, head_start: bytes, piece: bytes, most: int) -> tuple[int, bytes, float]:
    """Send ``head_start`` then ``piece`` repeatedly (never ending the head) until the proxy
    answers or closes; return the bytes sent, the answer and the seconds it took."""
    sent = 0
    started = time.monotonic()
    with connect(port) as sock:
        sock.sendall(head_start)
        sock.settimeout(0.0)
        answer = b""
        try:
            while sent < most:
                try:
                    answer += sock.recv(65536)
                    break  # an answer (or EOF) arrived
                except BlockingIOError:
                    pass
                try:
                    sent += sock.send(piece)
                except BlockingIOError:
                    time.sleep(0.001)
        except (BrokenPipeError, ConnectionResetError):
            pass
        sock.settimeout(5)
        rest, _ = read_until_closed(sock, 5)
    return sent, answer + rest, time.monotonic() - started


def test_an_endless_header_is_refused_with_431_at_the_limit(relay: StartRelay) -> None:
    with RawUpstream() as up:
        r = relay(up.url)
        base = r.baseline()
        sent, answer, took = _send_until_refused(r.port, b"POST /v1/chat/completions HTTP/1.1\r\nX-Big: ",
                                                 b"a" * 16384, most=64 * 1024 * 1024)
        assert status_of(answer) == 431 and b"request_head" in answer
        # Refused near the 32 KiB limit, not after the client gave up.
        assert sent < 4 * 1024 * 1024 and took < 3
        assert up.accepted == 0
        assert status_of(exchange(r.port, chat_request(r.port))) == 200
    r.assert_clean(base, up.port)


def test_each_head_limit_has_its_status(relay: StartRelay) -> None:
    with RawUpstream() as up:
        r = relay(up.url)
        long_line = b"GET /" + b"a" * 9000 + b" HTTP/1.1\r\nHost: x\r\n\r\n"
        assert status_of(exchange(r.port, long_line)) == 414
        big_header = chat_request(r.port, extra=b"X-Big: " + b"b" * 9000 + b"\r\n")
        assert status_of(exchange(r.port, big_header)) == 431
        many = b"".join(b"X-H%d: v\r\n" % i for i in range(150))
        assert status_of(exchange(r.port, chat_request(r.port, extra=many))) == 431
        # Under every limit: relayed.
        fine = b"".join(b"X-H%d: %s\r\n" % (i, b"v" * 200) for i in range(90))
        assert status_of(exchange(r.port, chat_request(r.port, extra=fine))) == 200
        assert up.accepted == 1
        # Refusals happen before the relay: no request is counted, nothing is in flight.
        m = scrape(r.url)
        assert m.get("infermeter_requests_total", code="200") == 1
        assert m.get("infermeter_requests_in_flight") == 0


def test_flags_raise_the_limits(relay: StartRelay) -> None:
    with RawUpstream() as up:
        r = relay(up.url, max_header_bytes=64 * 1024, max_head_bytes=128 * 1024, max_request_line=32 * 1024,
                  max_headers=300)
        big = chat_request(r.port, extra=b"X-Big: " + b"b" * 40000 + b"\r\n")
        assert status_of(exchange(r.port, big)) == 200
        many = b"".join(b"X-H%d: v\r\n" % i for i in range(250))
        assert status_of(exchange(r.port, chat_request(r.port, extra=many))) == 200
        assert status_of(exchange(r.port, b"GET /" + b"a" * 20000 + b" HTTP/1.1\r\nHost: x\r\n\r\n")) == 200
        assert any(b"b" * 40000 in req for req in up.requests)


def test_a_header_flood_leaves_other_streams_at_pace_and_memory_flat(relay: StartRelay) -> None:
    with RawUpstream() as up:
        r = relay(up.url)
        stop = threading.Event()
        floods = [0]

        def flood() -> None:
            while not stop.is_set():
                _send_until_refused(r.port, b"POST / HTTP/1.1\r\nX-Flood: ", b"f" * 65536, most=64 * 1024 * 1024)
                floods[0] += 1

        rss_before = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
        threads = [threading.Thread(target=flood, daemon=True) for _ in range(4)]
        for t in threads:
            t.start()
        try:
            worst = 0.0
            for _ in range(10):
                t0 = time.monotonic()
                assert status_of(exchange(r.port, chat_request(r.port))) == 200
                worst = max(worst, time.monotonic() - t0)
        finally:
            stop.set()
            for t in threads:
                t.join(10)
        grew_kib = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss - rss_before
        assert floods[0] >= 4
        assert worst < 1.0  # was 2.5 s behind 4 x 60 MB heads
        assert grew_kib < 64 * 1024  # was +237 MB for one 168 MB header


def _chunked_with_trailers(port: int, trailers: bytes) -> bytes:
    body = orjson.dumps(CHAT)
    return (b"POST /v1/chat/completions HTTP/1.1\r\nHost: 127.0.0.1:%d\r\nContent-Type: application/json\r\n"
            b"Transfer-Encoding: chunked\r\n\r\n%x\r\n%s\r\n0\r\n%s\r\n" % (port, len(body), body, trailers))


def test_request_trailers_never_reach_the_upstream(relay: StartRelay) -> None:
    planted = (b"Authorization: Bearer TRAILER-AUTH\r\nCookie: session=TRAILER-COOKIE\r\nX-Api-Key: TRAILER-KEY\r\n"
               b"X-Forwarded-For: 6.6.6.6\r\nHost: evil.example\r\n")
    with RawUpstream() as up:
        r = relay(up.url)
        base = r.baseline()
        assert status_of(exchange(r.port, _chunked_with_trailers(r.port, planted))) == 200
        assert up.wait_finished(1)
        (request,) = up.requests
        for value in (b"TRAILER-AUTH", b"TRAILER-COOKIE", b"TRAILER-KEY", b"6.6.6.6", b"evil.example"):
            assert value not in request
        assert b"m-fault" in request  # the body itself arrived
    r.assert_clean(base, up.port)


def test_transfer_encoding_other_than_chunked_and_te_on_http10_are_refused(relay: StartRelay) -> None:
    body = orjson.dumps(CHAT)
    chunked = b"%x\r\n%s\r\n0\r\n\r\n" % (len(body), body)
    head = b"POST /v1/chat/completions HTTP/%s\r\nHost: x\r\nContent-Type: application/json\r\nTransfer-Encoding: %s\r\n\r\n"
    with RawUpstream() as up:
        r = relay(up.url)
        assert status_of(exchange(r.port, head % (b"1.1", b"identity, chunked") + chunked)) == 501
        assert status_of(exchange(r.port, head % (b"1.1", b"gzip, chunked") + chunked)) == 501
        assert status_of(exchange(r.port, head % (b"1.0", b"chunked") + chunked)) == 400
        assert up.accepted == 0
        assert status_of(exchange(r.port, head % (b"1.1", b"chunked") + chunked)) == 200
        assert eventually(lambda: up.accepted == 1)


def test_refused_heads_close_the_connection(relay: StartRelay) -> None:
    with RawUpstream() as up:
        r = relay(up.url)
        with connect(r.port) as sock:
            sock.sendall(chat_request(r.port, extra=b"X-Big: " + b"b" * 9000 + b"\r\n") + chat_request(r.port))
            data, closed = read_until_closed(sock, 5)
        assert closed and status_of(data) == 431 and data.count(b"HTTP/1.1") == 1
        assert up.accepted == 0
        with socket.create_connection(("127.0.0.1", r.port), timeout=5):
            pass


def _head_with(headers: int, size: int, port: int) -> bytes:
    extra = b"".join(b"X-Big-%d: %s\r\n" % (i, b"h" * size) for i in range(headers))
    return chat_request(port, extra=extra)


def test_the_whole_head_limit_holds_in_one_read_as_in_two(relay: StartRelay) -> None:
    with RawUpstream() as up:
        r = relay(up.url, max_head_bytes=4096)
        head = _head_with(2, 6000, r.port)  # each header under 8 KiB, the two over 4 KiB
        assert status_of(exchange(r.port, head)) == 431  # one write: was relayed (200)
        with connect(r.port) as sock:
            sock.sendall(head[:7000])
            time.sleep(0.2)  # a read of its own
            sock.sendall(head[7000:])
            assert status_of(read_response(sock)) == 431
        assert status_of(exchange(r.port, chat_request(r.port))) == 200
        assert up.accepted == 1


def test_the_default_whole_head_limit_holds_in_one_read(relay: StartRelay) -> None:
    with RawUpstream() as up:
        r = relay(up.url)
        for headers in (5, 12):  # 35 and 84 KB of 7,000-byte headers: both reached the upstream
            answer = exchange(r.port, _head_with(headers, 7000, r.port))
            assert status_of(answer) == 431 and b"request_head_too_large" in answer
        assert status_of(exchange(r.port, _head_with(4, 7000, r.port))) == 200  # 28 KB: under 32 KiB
        assert up.accepted == 1


def test_asterisk_form_and_connect_are_answered_at_the_edge(relay: StartRelay) -> None:
    with RawUpstream() as up:
        r = relay(up.url)
        base = r.baseline()
        for method in (b"GET", b"OPTIONS", b"POST"):
            with connect(r.port) as sock:
                sock.sendall(b"%s * HTTP/1.1\r\nHost: x\r\nContent-Length: 0\r\n\r\n" % method)
                data, closed = read_until_closed(sock, 5)
            assert status_of(data) == 400 and b"bad_request_target" in data and closed
        with connect(r.port) as sock:
            sock.sendall(b"CONNECT example.com:443 HTTP/1.1\r\nHost: example.com:443\r\n\r\n")
            data, closed = read_until_closed(sock, 5)
        assert status_of(data) == 405 and b"method_not_allowed" in data and closed
        assert up.accepted == 0  # nothing was relayed
        # Absolute-form is no refusal: its path is relayed, as nginx relays it.
        assert status_of(exchange(r.port, chat_request(r.port, path=b"http://x/v1/chat/completions"))) == 200
        assert up.wait_finished(1)
        assert up.requests[0].startswith(b"POST /v1/chat/completions HTTP/1.1\r\n")
    r.assert_clean(base, up.port)
