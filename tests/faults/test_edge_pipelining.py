"""Pipelined requests at the edge: all answered, in order, and one at a time.

nginx reads a pipelined request only once the one before it is answered; a proxy that
parses every head in a read turns one connection's 250 KB of ``GET /x`` into 13,000
queued request cycles (+32 MiB, and /healthz took seconds behind thirty of them).
"""

from __future__ import annotations

import random
import time
from collections.abc import Callable
from pathlib import Path

import httpx
import psutil
import pytest

from tests.faults.probes import Relayed
from tests.faults.rawclient import connect, read_responses, send_for
from tests.support.scripted_upstream import Conn, RawUpstream
from tests.support.servers import ChildProcess

StartRelay = Callable[..., Relayed]


def echo_path(conn: Conn) -> None:
    """Answer with the request's target and body, so a test can tell the answers apart."""
    request = conn.read_request()
    line, _, rest = request.partition(b"\r\n")
    body = line.split(b" ")[1] + b" " + rest.partition(b"\r\n\r\n")[2]
    conn.send(b"HTTP/1.1 200 OK\r\ncontent-length: %d\r\nconnection: close\r\n\r\n%s" % (len(body), body))


def _mixed_requests(count: int) -> tuple[bytes, list[bytes]]:
    """``count`` requests of every framing (no body, Content-Length, chunked, the proxy's
    own path) and the body each answer must carry."""
    wire, expected = [], []
    for i in range(count):
        kind = i % 4
        if kind == 0:
            wire.append(b"GET /e/%d HTTP/1.1\r\nHost: x\r\n\r\n" % i)
            expected.append(b"/e/%d " % i)
        elif kind == 1:
            body = b"body-%d\r\n\r\nGET /not-a-request HTTP/1.1\r\n\r\n" % i  # looks like a head, is a body
            wire.append(b"POST /e/%d HTTP/1.1\r\nHost: x\r\nContent-Length: %d\r\n\r\n%s" % (i, len(body), body))
            expected.append(b"/e/%d %s" % (i, body))
        elif kind == 2:
            wire.append(b"POST /e/%d HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n\r\n"
                        b"4\r\nab\r\n\r\n3\r\ncde\r\n0\r\n\r\n" % i)
            expected.append(b"/e/%d ab\r\ncde" % i)
        else:
            wire.append(b"\r\nGET /healthz HTTP/1.1\r\nHost: x\r\n\r\n")  # a stray CRLF before it, as RFC 9112 allows
            expected.append(b"")
    return b"".join(wire), expected


def _check(answers: list[tuple[int, bytes]], expected: list[bytes]) -> None:
    assert len(answers) == len(expected)
    for (status, body), want in zip(answers, expected):
        assert status == 200
        assert body == (want or b'{"status":"ok"}')  # /healthz, the proxy's own


@pytest.mark.parametrize("split", ["one-write", "random-pieces"])
def test_pipelined_requests_are_all_answered_in_order(relay: StartRelay, split: str) -> None:
    wire, expected = _mixed_requests(40)
    with RawUpstream(then=echo_path) as up:
        r = relay(up.url)
        base = r.baseline()
        with connect(r.port) as sock:
            if split == "one-write":
                sock.sendall(wire)
            else:
                rng = random.Random(18)
                at = 0
                while at < len(wire):
                    step = rng.randint(1, 300)
                    sock.sendall(wire[at:at + step])
                    at += step
                    time.sleep(0.001)
            answers = read_responses(sock, len(expected))
        _check(answers, expected)
        assert up.accepted == 30  # the proxy's own path never went upstream
    r.assert_clean(base, up.port)


def test_requests_pipelined_after_an_unsupported_upgrade_are_answered(relay: StartRelay) -> None:
    with RawUpstream(then=echo_path) as up:
        r = relay(up.url)
        with connect(r.port) as sock:
            # Served as plain HTTP (only WebSocket upgrades are taken); the parser stops at its
            # end, and the two behind it were dropped, their client left waiting.
            sock.sendall(b"GET /e/0 HTTP/1.1\r\nHost: x\r\nConnection: Upgrade\r\nUpgrade: h2c\r\n\r\n"
                         b"GET /e/1 HTTP/1.1\r\nHost: x\r\n\r\nGET /e/2 HTTP/1.1\r\nHost: x\r\n\r\n")
            answers = read_responses(sock, 3)
        assert answers == [(200, b"/e/0 "), (200, b"/e/1 "), (200, b"/e/2 ")]


def _tree_rss(pid: int) -> int:
    proc = psutil.Process(pid)
    return sum(p.memory_info().rss for p in [proc, *proc.children(recursive=True)])


def _peak_rss(pid: int, seconds: float) -> int:
    peak = 0
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        peak = max(peak, _tree_rss(pid))
        time.sleep(0.1)
    return peak


@pytest.mark.parametrize("workers", [1, 2])
def test_a_pipelined_flood_costs_one_request_per_connection(tmp_path: Path, workers: int) -> None:
    big = b"x" * 65536  # answers that fill the unread socket buffers after a few requests

    def answer(conn: Conn) -> None:
        conn.read_request()
        conn.send(b"HTTP/1.1 200 OK\r\ncontent-length: %d\r\nconnection: close\r\n\r\n%s" % (len(big), big))

    flood = b"GET /x HTTP/1.1\r\n\r\n" * 13000  # 247 KB, never read back
    with RawUpstream(then=answer) as up:
        argv = ["serve", "--upstream", up.url, "--port", "{port}", "--collectors", "none", "--workers", str(workers),
                "--log-level", "warning"]
        with ChildProcess(argv, log=tmp_path / "proxy.log") as proxy:
            for _ in range(5):
                assert httpx.get(proxy.url + "/x", timeout=10).status_code == 200
            before = _tree_rss(proxy.pid)
            socks = [connect(proxy.port) for _ in range(3)]
            try:
                for sock in socks:
                    send_for(sock, flood, 2.0)
                # Unbounded, each connection grew the proxy by 32 MiB within a second or two.
                peak = _peak_rss(proxy.pid, 3.0)
                started = time.monotonic()
                assert httpx.get(proxy.url + "/healthz", timeout=10).status_code == 200
                took = time.monotonic() - started
                peak = max(peak, _tree_rss(proxy.pid))
            finally:
                for sock in socks:
                    sock.close()
            grown_mib = (peak - before) / 2**20
            assert grown_mib < 16, f"RSS grew by {grown_mib:.1f} MiB for three flooding connections"
            assert took < 2.0  # was 6.3 s behind thirty
            assert httpx.get(proxy.url + "/x", timeout=10).status_code == 200
