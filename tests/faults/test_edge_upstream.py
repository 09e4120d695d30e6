"""What a misbehaving upstream can send: nothing past a complete response changes it or
reaches another client, bodiless statuses keep the connection, and a POST is never sent twice.

Each test runs on both upstream clients (the native transport and the httpx fallback).
"""

from __future__ import annotations

import time
from collections.abc import Callable
from pathlib import Path

import httpx
import pytest

from tests.faults.probes import Relayed
from tests.faults.rawclient import CHAT, chat_request, connect, read_response, status_of
from tests.support.scripted_upstream import EVENT, SSE_HEAD, Conn, RawUpstream, chunk
from tests.support.metrics import scrape
from tests.support.servers import ChildProcess
from tests.support.wait import poll

StartRelay = Callable[..., Relayed]

OK = b"HTTP/1.1 200 OK\r\ncontent-type: application/json\r\ncontent-length: 2\r\n\r\nok"
STRAY_200 = b"HTTP/1.1 200 OK\r\ncontent-type: text/plain\r\ncontent-length: 5\r\n\r\nSTRAY"


def _then_stray(first: bytes, stray: bytes) -> Callable[[Conn], None]:
    def handler(conn: Conn) -> None:
        conn.read_request()
        conn.send(first + stray)  # one write: the stray response arrives with the real one
        conn.read_request()  # a reused connection would bring the next request here
        conn.send(OK)
    return handler


@pytest.mark.parametrize("first, stray", [
    (OK, b"HTTP/1.1 500 Internal Server Error\r\ncontent-length: 4\r\n\r\nboom"),
    (b"HTTP/1.1 204 No Content\r\n\r\n", STRAY_200),
], ids=["200-then-500", "204-then-200"])
def test_an_unsolicited_response_changes_nothing_and_reaches_no_one(relay: StartRelay, upstream_client: str,
                                                                     first: bytes, stray: bytes) -> None:
    with RawUpstream(_then_stray(first, stray)) as up:
        r = relay(up.url, upstream_client=upstream_client)
        base = r.baseline()
        # Each client stays connected until its request is recorded: one that hangs up the
        # moment its body is complete can leave while the httpx transport still reads the
        # upstream's end of message, and is counted as cancelled (not what this test is about).
        with httpx.Client(timeout=10) as client_one, httpx.Client(timeout=10) as client_two:
            one = client_one.post(r.url + "/v1/chat/completions", json=CHAT)
            assert one.status_code == status_of(first)
            assert one.content == (b"ok" if status_of(first) == 200 else b"")
            # The next, unrelated client gets its own response from a fresh connection.
            two = client_two.post(r.url + "/v1/chat/completions", json=CHAT)
            assert two.status_code == 200 and b"STRAY" not in two.content and b"boom" not in two.content
            assert EVENT.split(b"\n")[0][6:] in two.content
            assert up.accepted == 2
            # The relay records a request just after its last byte went out: wait for both.
            m = poll(lambda: scrape(r.url), lambda m: m.get("infermeter_requests_total") == 2)
        assert m.get("infermeter_requests_total", code="204") == (1 if status_of(first) == 204 else 0)
        assert m.get("infermeter_requests_total", code="500") == 0
        assert m.get("infermeter_requests_total", code="200", outcome="completed") == (2 if status_of(first) == 200 else 1)
    r.assert_clean(base, up.port)


@pytest.mark.parametrize("status", [204, 304])
def test_bodiless_status_with_content_length_keeps_the_client_connection(relay: StartRelay, upstream_client: str,
                                                                         status: int) -> None:
    def answer(conn: Conn) -> None:
        conn.read_request()
        conn.send(b"HTTP/1.1 %d X\r\ncontent-length: 42\r\netag: \"v1\"\r\n\r\n" % status)
        conn.read_request()
        conn.send(SSE_HEAD.replace(b"connection: close\r\n", b"") + chunk(EVENT) + b"0\r\n\r\n")

    with RawUpstream(answer) as up:
        r = relay(up.url, upstream_client=upstream_client)
        with connect(r.port) as sock:
            # Two requests pipelined on one client connection: the second must not be lost.
            sock.sendall(chat_request(r.port) + chat_request(r.port))
            first = read_response(sock)
            second = read_response(sock)
        assert status_of(first) == status and b'etag: "v1"' in first.lower()
        assert status_of(second) == 200 and b"tok" in second
        m = poll(lambda: scrape(r.url), lambda m: m.get("infermeter_requests_total") == 2)
        assert m.get("infermeter_requests_total", code=str(status), outcome="completed") == 1
        assert m.get("infermeter_requests_total", code="200", outcome="completed") == 1


@pytest.mark.parametrize("method", ["POST", "GET"])
def test_a_request_is_sent_again_only_when_idempotent(relay: StartRelay, upstream_client: str, method: str) -> None:
    sent: list[bytes] = []

    def serve_once_then_close_silently(conn: Conn) -> None:
        sent.append(conn.read_request())
        conn.send(OK)  # kept alive
        sent.append(conn.read_request())
        # ...and closed without a word: did the server start on the request or not?

    def serve(conn: Conn) -> None:
        sent.append(conn.read_request())
        conn.send(OK)

    with RawUpstream(serve_once_then_close_silently, then=serve) as up:
        r = relay(up.url, upstream_client=upstream_client)
        with httpx.Client(timeout=10) as client:
            assert client.request(method, r.url + "/v1/chat/completions", json=CHAT).status_code == 200
            second = client.request(method, r.url + "/v1/chat/completions", json=CHAT)
        up.wait_finished(up.accepted)
        if method == "POST":
            assert second.status_code == 502
            assert len(sent) == 2 and up.accepted == 1  # the first, and the second once
        else:
            assert second.status_code == 200
            assert len(sent) == 3 and up.accepted == 2  # retried on a fresh connection


@pytest.mark.parametrize("split", [None, 1, 7, 30])
def test_interim_responses_are_skipped_whatever_the_chunking(relay: StartRelay, upstream_client: str,
                                                            split: int | None) -> None:
    wire = b"HTTP/1.1 199 Odd\r\nx-hint: 1\r\n\r\nHTTP/1.1 103 Early Hints\r\nlink: </a>\r\n\r\n" + OK

    def answer(conn: Conn) -> None:
        conn.read_request()
        if split is None:
            conn.send(wire)
            return
        for i in range(0, len(wire), split):
            conn.send(wire[i:i + split])
            time.sleep(0.001)

    with RawUpstream(answer) as up:
        r = relay(up.url, upstream_client=upstream_client)
        response = httpx.post(r.url + "/v1/chat/completions", json=CHAT, timeout=10)
        assert (response.status_code, response.content) == (200, b"ok")
        assert "x-hint" not in response.headers


def test_switching_protocols_is_a_502(relay: StartRelay, upstream_client: str) -> None:
    def answer(conn: Conn) -> None:
        conn.read_request()
        conn.send(b"HTTP/1.1 101 Switching Protocols\r\nupgrade: websocket\r\nconnection: upgrade\r\n\r\n")
        conn.closed_by_peer(5)

    with RawUpstream(answer) as up:
        r = relay(up.url, upstream_client=upstream_client)
        assert httpx.post(r.url + "/v1/chat/completions", json=CHAT, timeout=10).status_code == 502


def test_no_header_value_from_either_side_is_logged_at_debug(upstream_client: str, tmp_path: Path) -> None:
    """The real CLI at --log-level debug: what it configures is what users get."""
    secrets = {"request": b"Bearer REQ-SECRET-41ab", "cookie": b"session=RESP-COOKIE-93cd", "token": b"RESP-TOKEN-77ef"}

    def answer(conn: Conn) -> None:
        conn.read_request()
        conn.send(b"HTTP/1.1 200 OK\r\ncontent-type: application/json\r\nset-cookie: " + secrets["cookie"]
                  + b"\r\nx-upstream-token: " + secrets["token"] + b"\r\ncontent-length: 2\r\n\r\nok")

    with RawUpstream(answer, answer) as up:
        log_path = tmp_path / "proxy.log"
        with ChildProcess(["serve", "--upstream", up.url, "--port", "{port}", "--collectors", "none",
                           "--log-level", "debug", "--upstream-client", upstream_client], log=log_path) as proxy:
            for _ in range(2):
                response = httpx.post(proxy.url + "/v1/chat/completions", json=CHAT, timeout=10,
                                      headers={"Authorization": secrets["request"].decode()})
                assert response.status_code == 200 and response.headers["x-upstream-token"] == "RESP-TOKEN-77ef"
        logs = log_path.read_bytes()
    assert b"infermeter relaying" in logs  # the capture saw the proxy
    for value in secrets.values():
        assert value not in logs
        assert value.split(b"=")[-1].split()[-1] not in logs
