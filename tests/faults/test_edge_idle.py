"""Idle and trickling clients at the edge: every connection ends on a clock.

Bytes that start no request (a bare CRLF between requests) must not reset the idle
clock, and a body may not pause past --body-timeout, whether or not the app reads it:
the proxy's own paths answer without reading, and a client trickling a 1 GB body to
/healthz used to keep its connection for as long as it liked.
"""

from __future__ import annotations

import socket
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from proxy.config import HeadLimits
from proxy.server import hot_path_options
from tests.faults.probes import Relayed
from tests.faults.rawclient import chat_request, connect, read_response, read_until_closed, status_of
from tests.support.scripted_upstream import RawUpstream
from tests.support.metrics import scrape
from tests.support.servers import ChildProcess, ThreadServer

StartRelay = Callable[..., Relayed]


def _trickle_until_closed(sock: socket.socket, piece: bytes, every: float, most: float) -> float:
    """Send ``piece`` every ``every`` seconds until the peer closes (the seconds it took) or
    ``most`` seconds pass (then ``most``)."""
    started = time.monotonic()
    sock.settimeout(every)
    while time.monotonic() - started < most:
        try:
            if sock.recv(65536) == b"":
                return time.monotonic() - started
        except socket.timeout:
            pass
        except ConnectionResetError:
            return time.monotonic() - started
        try:
            sock.sendall(piece)
        except (BrokenPipeError, ConnectionResetError):
            return time.monotonic() - started
    return most


def test_bare_crlfs_do_not_keep_an_idle_connection(relay: StartRelay) -> None:
    with RawUpstream() as up:
        r = relay(up.url, head_timeout=1.0, server_options={"timeout_keep_alive": 1})
        base = r.baseline()
        with connect(r.port) as sock:
            sock.sendall(b"GET /healthz HTTP/1.1\r\nHost: x\r\n\r\n")
            assert status_of(read_response(sock)) == 200
            took = _trickle_until_closed(sock, b"\r\n", every=0.3, most=6.0)
        assert 0.7 < took < 3.0  # the 1 s keep-alive; open for good before
        with connect(r.port) as sock:  # before the first request: the head's deadline
            took = _trickle_until_closed(sock, b"\r\n", every=0.3, most=6.0)
        assert 0.7 < took < 3.0
    r.assert_clean(base, None)


@pytest.mark.parametrize("path", ["/healthz", "/metrics"])
@pytest.mark.parametrize("every, keep_alive", [(2.0, 5), (0.3, 2)], ids=["body-timeout", "keep-alive"])
def test_a_trickled_body_nobody_reads_is_cut_off(relay: StartRelay, path: str, every: float, keep_alive: int) -> None:
    with RawUpstream() as up:
        r = relay(up.url, body_timeout=1.0, server_options={"timeout_keep_alive": keep_alive})
        base = r.baseline()
        with connect(r.port) as sock:
            sock.sendall(b"GET %s HTTP/1.1\r\nHost: x\r\nContent-Length: 1000000000\r\n\r\n" % path.encode())
            assert status_of(read_response(sock)) == 200  # answered without reading the body
            took = _trickle_until_closed(sock, b"a", every=every, most=8.0)
        # A byte every 2 s: cut after the 1 s --body-timeout. A byte every 0.3 s: the body
        # no longer resets the 2 s keep-alive that began with the answer. Both lasted for good.
        assert (0.7 < took < 2.8) if every > 1 else (1.7 < took < 3.8)
        assert up.accepted == 0
    r.assert_clean(base, None)


def test_the_relay_answers_its_own_body_timeout(relay: StartRelay) -> None:
    with RawUpstream() as up:
        r = relay(up.url, body_timeout=0.5)
        with connect(r.port) as sock:
            request = chat_request(r.port)
            sock.sendall(request[:-5])  # the body stalls five bytes short
            data, closed = read_until_closed(sock, 5)
        assert status_of(data) == 408
        # Counted: the relay answered before the edge would (it gives the app a grace).
        assert scrape(r.url).get("infermeter_requests_total", code="408", outcome="rejected") == 1
        assert closed and up.accepted == 0


async def _reads_forever(scope: dict[str, Any], receive: Any, send: Any) -> None:
    if scope["type"] != "http":
        return
    while (await receive())["type"] != "http.disconnect":
        pass


def test_an_app_that_waits_for_a_stalled_body_gets_a_408_from_the_edge() -> None:
    limits = HeadLimits(body_timeout=0.5)
    with ThreadServer(_reads_forever, lifespan="off", **hot_path_options(limits)) as server:
        with connect(server.port) as sock:
            started = time.monotonic()
            sock.sendall(b"POST /x HTTP/1.1\r\nHost: x\r\nContent-Length: 100\r\n\r\n0123456789")
            data, closed = read_until_closed(sock, 5)
            took = time.monotonic() - started
    assert status_of(data) == 408 and b"request_timeout" in data and closed
    assert 1.2 < took < 3.0  # --body-timeout, and the second the app has to answer itself


def test_workers_cut_off_a_trickled_body_too(tmp_path: Path) -> None:
    with RawUpstream() as up:
        argv = ["serve", "--upstream", up.url, "--port", "{port}", "--collectors", "none", "--workers", "2",
                "--body-timeout", "1", "--log-level", "warning"]
        with ChildProcess(argv, log=tmp_path / "proxy.log") as proxy:
            with connect(proxy.port) as sock:
                sock.sendall(b"GET /healthz HTTP/1.1\r\nHost: x\r\nContent-Length: 1000000000\r\n\r\n")
                assert status_of(read_response(sock)) == 200
                took = _trickle_until_closed(sock, b"a", every=2.0, most=8.0)
            assert 0.7 < took < 2.8
