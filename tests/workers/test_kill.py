"""kill -9 a worker mid-load: it comes back, merged counters never go backwards, and only
the requests that worker held fail."""

from __future__ import annotations

import asyncio
import contextlib
import os
import signal
import socket
import threading
import time
from pathlib import Path

import httpx
import psutil

from tests.support.metrics import Scrape, scrape
from tests.support.wait import wait_for
from tests.workers.conftest import Sent, listening, mixed_load, settled, simulator, workers_proxy

STREAMS = 40
CUMULATIVE = ("_total", "_bucket", "_count", "_sum")


def _established(pid: int, port: int) -> int:
    conns = psutil.Process(pid).net_connections(kind="tcp")
    return sum(1 for c in conns if c.status == psutil.CONN_ESTABLISHED and c.laddr.port == port)


def _gone(pid: int) -> bool:
    # Reaped by the supervisor, not merely a zombie: a killed process's leader thread turns
    # zombie while its other threads, and its listening socket, are still going away.
    return not psutil.pid_exists(pid)


def _never_decrease(scrapes: list[Scrape]) -> None:
    for before, after in zip(scrapes, scrapes[1:]):
        for key, value in before.samples.items():
            name = key[0]
            if name.endswith(CUMULATIVE) and not name.startswith(("infermeter_workers", "process_")):
                assert key in after.samples, f"{key} vanished"
                assert after.samples[key] >= value, f"{key} went from {value} to {after.samples[key]}"


def test_kill_9_a_worker_mid_load(tmp_path: Path) -> None:
    log = tmp_path / "proxy.log"
    with simulator("--ttft", "0.05", "--tbt", "0.05", "--output-tokens", "30") as sim, \
         workers_proxy(sim.url, 2, "--log-level", "info", log=log) as proxy:
        sent = Sent()
        load = threading.Thread(target=lambda: asyncio.run(mixed_load(proxy.url, STREAMS, 20, sent, kinds=("chat",))))
        scrapes: list[Scrape] = []

        def scraper() -> None:
            while load.is_alive():
                # A scrape the kernel handed to the dying worker fails like any of its requests.
                with contextlib.suppress(httpx.HTTPError):
                    scrapes.append(scrape(proxy.url, timeout=10))
                time.sleep(0.2)

        load.start()
        watcher = threading.Thread(target=scraper)
        watcher.start()
        pids = listening(proxy)
        wait_for(lambda: sum(_established(p, proxy.port) for p in pids) >= 16, "streams open on the workers")
        held = {p: _established(p, proxy.port) for p in pids}
        victim = max(held, key=lambda p: held[p])
        os.kill(victim, signal.SIGKILL)
        # Until its socket is closed the kernel still queues new connections on it, and
        # resets them with it: those were the dead worker's too.
        wait_for(lambda: _gone(victim), "the killed worker gone", timeout=10, step=0.005)
        killed_at = time.monotonic()
        load.join(timeout=60)
        watcher.join(timeout=30)

        # It comes back: a new process listening beside the survivor, the restart counted and logged.
        wait_for(lambda: len(listening(proxy)) == 2 and victim not in listening(proxy), "a replacement worker")
        m = settled(proxy.url, lambda m: m.get("infermeter_worker_restarts_total") == 1
                    and m.get("infermeter_requests_in_flight") == 0, "restart counted, nothing in flight")
        scrapes.append(m)
        assert f"(pid {victim}) exited with signal SIGKILL" in log.read_text()

    # Only requests already under way when the worker died failed, no more than it held.
    assert all(start < killed_at for start, _, _ in sent.failed), (killed_at, [(s, e, w[:60]) for s, e, w in sent.failed])
    assert len(sent.failed) <= held[victim] + 2, (held, sent.failed)
    assert len(sent.ok) + len(sent.failed) == STREAMS
    assert len(sent.ok) >= STREAMS - held[victim] - 2
    _never_decrease(scrapes)
    # What the dead worker counted since its last collection (at most one scrape ago) is
    # lost; nothing is counted twice.
    completed = m.get("infermeter_requests_total", outcome="completed")
    assert len(sent.ok) - 5 <= completed <= len(sent.ok)


def _answer(conn: socket.socket) -> bytes:
    chunks = []
    while chunk := conn.recv(65536):
        chunks.append(chunk)
    return b"".join(chunks)


def test_new_connections_wait_while_every_worker_restarts(tmp_path: Path) -> None:
    """kill -9 every worker at once: the port still takes connections, and the
    replacements serve every one of them (issue 18: 24 were refused)."""
    connections = 24
    with simulator() as sim, workers_proxy(sim.url, 2, "--log-level", "info", log=tmp_path / "proxy.log") as proxy:
        victims = listening(proxy)
        for pid in victims:
            os.kill(pid, signal.SIGKILL)
        wait_for(lambda: all(_gone(pid) for pid in victims), "every worker gone", timeout=10, step=0.005)
        opened = [socket.create_connection(("127.0.0.1", proxy.port), timeout=30) for _ in range(connections)]
        try:
            for conn in opened:
                conn.sendall(b"GET /v1/models HTTP/1.1\r\nHost: proxy\r\nConnection: close\r\n\r\n")
            answers = [_answer(conn) for conn in opened]
        finally:
            for conn in opened:
                conn.close()
        assert [a.split(b"\r\n", 1)[0] for a in answers] == [b"HTTP/1.1 200 OK"] * connections
        assert not victims & listening(proxy)
        settled(proxy.url, lambda m: m.get("infermeter_worker_restarts_total") == 2
                and m.get("infermeter_requests_total", endpoint="other") == connections, "the replacements served them")


def test_survivors_take_new_connections_while_a_slot_is_empty(tmp_path: Path) -> None:
    """kill -9 one of two workers: new connections go to the survivor at once rather than
    waiting in the dead slot's backlog for the replacement (which takes over a second to
    spawn and import before it listens)."""
    log = tmp_path / "proxy.log"
    connections = 16
    with simulator() as sim, workers_proxy(sim.url, 2, "--log-level", "info", log=log) as proxy:
        victim, survivor = sorted(listening(proxy))
        os.kill(victim, signal.SIGKILL)
        # The supervisor logs the exit once it has handed the slot's share to the survivor.
        wait_for(lambda: f"(pid {victim}) exited" in log.read_text(), "the exit handled", timeout=10, step=0.005)
        opened = [socket.create_connection(("127.0.0.1", proxy.port), timeout=30) for _ in range(connections)]
        try:
            for conn in opened:
                conn.sendall(b"GET /v1/models HTTP/1.1\r\nHost: proxy\r\nConnection: close\r\n\r\n")
            answers = [_answer(conn) for conn in opened]
            serving = listening(proxy)
        finally:
            for conn in opened:
                conn.close()
        assert [a.split(b"\r\n", 1)[0] for a in answers] == [b"HTTP/1.1 200 OK"] * connections
        # Every answer came while the survivor was the only worker serving: none waited
        # for the replacement. (A replacement listens only once its server has started.)
        assert serving == {survivor}, serving
        wait_for(lambda: len(listening(proxy)) == 2, "a replacement worker")
