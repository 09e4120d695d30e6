"""A client that leaves is noticed at once, whatever the request was doing."""

from __future__ import annotations

import json
import socket
import time
from typing import Any

from tests.support.servers import ThreadServer
from tests.support.wait import seconds_until


def open_request(sim: ThreadServer, path: str, body: dict[str, Any], headers: dict[str, str] | None = None) -> socket.socket:
    """A raw HTTP/1.1 request on a socket the test can close at the moment it chooses."""
    payload = json.dumps(body).encode()
    head = f"POST {path} HTTP/1.1\r\nhost: 127.0.0.1\r\ncontent-type: application/json\r\n"
    head += "".join(f"{k}: {v}\r\n" for k, v in (headers or {}).items())
    head += f"content-length: {len(payload)}\r\n\r\n"
    sock = socket.create_connection(("127.0.0.1", sim.port), timeout=10)
    sock.sendall(head.encode() + payload)
    return sock


def read_until(sock: socket.socket, marker: bytes, count: int) -> None:
    seen = b""
    while seen.count(marker) < count:
        data = sock.recv(65536)
        assert data, "server closed the stream early"
        seen += data


def test_disconnect_mid_stream_stops_generation(simulator: Any) -> None:
    sim = simulator(ttft=0.01, tbt=0.02, output_tokens=500)
    sock = open_request(sim, "/v1/chat/completions", {"messages": [], "stream": True})
    read_until(sock, b'"delta":{"content"', 3)
    assert sim.app.stats.active == 1
    sock.close()
    stats = sim.app.stats
    took = seconds_until(lambda: stats.cancelled == 1 and stats.active == 0, timeout=0.5)
    assert took < 0.5
    assert stats.completed == 0


def test_disconnect_from_flat_out_stream(simulator: Any) -> None:
    # Flat out never sleeps, so only its periodic yields let the watcher run.
    sim = simulator(ttft=0, tbt=0, output_tokens=50_000_000)
    sock = open_request(sim, "/api/generate", {"prompt": "x"})
    read_until(sock, b'"done":false', 100)
    sock.close()
    stats = sim.app.stats
    seconds_until(lambda: stats.cancelled == 1 and stats.active == 0, timeout=0.5)


def test_disconnect_while_waiting_for_non_stream_answer(simulator: Any) -> None:
    sim = simulator(ttft=5.0, tbt=0.02, output_tokens=10)
    sock = open_request(sim, "/v1/messages", {"messages": [], "max_tokens": 10})
    seconds_until(lambda: sim.app.stats.active == 1, timeout=2)
    sock.close()
    stats = sim.app.stats
    seconds_until(lambda: stats.cancelled == 1 and stats.active == 0, timeout=0.5)


def test_disconnect_while_queued_frees_the_place(simulator: Any) -> None:
    sim = simulator(ttft=0.01, tbt=0.02, output_tokens=500, max_concurrency=1)
    stats = sim.app.stats
    first = open_request(sim, "/v1/completions", {"prompt": "x", "stream": True})
    read_until(first, b'"text":"', 1)
    second = open_request(sim, "/v1/completions", {"prompt": "x", "stream": True})
    seconds_until(lambda: stats.queued == 1, timeout=2)
    second.close()
    seconds_until(lambda: stats.cancelled == 1 and stats.queued == 0 and stats.active == 1, timeout=0.5)
    # The slot was never handed to the departed request: a third one gets it next.
    third = open_request(sim, "/v1/completions", {"prompt": "x", "stream": True}, {"x-sim-output-tokens": "2"})
    seconds_until(lambda: stats.queued == 1, timeout=2)
    first.close()
    read_until(third, b"[DONE]", 1)
    third.close()
    seconds_until(lambda: stats.completed == 1 and stats.cancelled == 2 and stats.active == 0, timeout=1)


def test_finished_stream_is_not_counted_as_cancelled(simulator: Any) -> None:
    sim = simulator(ttft=0, tbt=0.001, output_tokens=5)
    sock = open_request(sim, "/v1/chat/completions", {"messages": [], "stream": True})
    read_until(sock, b"[DONE]", 1)
    sock.close()
    stats = sim.app.stats
    seconds_until(lambda: stats.active == 0, timeout=1)
    time.sleep(0.05)
    assert (stats.completed, stats.cancelled) == (1, 0)
