"""The relay over real sockets: bytes unchanged, headers rewritten, failures mapped."""

from __future__ import annotations

import asyncio
import hashlib
import socket
import threading
import time
from collections.abc import Callable

import httpx
import pytest

from tests.support.metrics import scrape
from tests.support.servers import ThreadServer, free_port

CHAT = {"model": "m1", "messages": [{"role": "user", "content": "hi"}], "stream": True, "max_tokens": 10}


def _stream_digest(url: str, body: dict[str, object]) -> tuple[str, int, int]:
    digest = hashlib.sha256()
    chunks = 0
    with httpx.stream("POST", url + "/v1/chat/completions", json=body, timeout=10) as r:
        for chunk in r.iter_raw():
            digest.update(chunk)
            chunks += 1
        return digest.hexdigest(), r.status_code, chunks


def _replay_app(parts: list[bytes], content_type: bytes):  # type: ignore[no-untyped-def]
    """Serves the same bytes, in the same pieces, on every request: ids and timestamps
    of a live server differ between two requests; these cannot."""

    async def app(scope, receive, send):  # type: ignore[no-untyped-def]
        if scope["type"] != "http":
            return
        await send({"type": "http.response.start", "status": 200, "headers": [(b"content-type", content_type)]})
        for part in parts:
            await send({"type": "http.response.body", "body": part, "more_body": True})
            await asyncio.sleep(0.01)  # pieces a relay that buffers would merge
        await send({"type": "http.response.body", "body": b""})

    return app


def test_streamed_bytes_hash_equal_to_direct(sim: ThreadServer, start_proxy: Callable[..., ThreadServer]) -> None:
    with httpx.stream("POST", sim.url + "/v1/chat/completions", timeout=10,
                      json={**CHAT, "stream_options": {"include_usage": True}}) as r:
        recorded = list(r.iter_raw())
    # A real stream, then bytes a careless proxy would mangle: CR line ends, non-UTF-8, NUL.
    parts = [*recorded, b"data: {\"x\": 1}\r\n\r", b"\n: \xff\xfe\x00 comment\r\r"]
    with ThreadServer(_replay_app(parts, b"text/event-stream; charset=utf-8")) as upstream:
        proxy = start_proxy(upstream.url)
        direct = _stream_digest(upstream.url, CHAT)
        relayed = _stream_digest(proxy.url, CHAT)
    assert direct[0] == hashlib.sha256(b"".join(parts)).hexdigest()
    assert relayed[:2] == direct[:2]
    # Relayed chunk by chunk, not buffered into one piece.
    assert relayed[2] > 5


def test_headers_rewritten_both_ways(sim: ThreadServer, proxy: ThreadServer) -> None:
    r = httpx.get(proxy.url + "/v1/models", headers={"Connection": "keep-alive, x-private", "x-private": "drop-me",
                                                      "x-forwarded-for": "10.9.8.7"})
    assert r.status_code == 200
    assert r.json()["data"]
    # uvicorn's own Server header is off: the upstream's (if any) is the only one.
    assert r.headers.get_list("server") == httpx.get(sim.url + "/v1/models").headers.get_list("server")


def test_upstream_sees_forwarded_headers(start_proxy: Callable[..., ThreadServer]) -> None:
    seen: dict[str, list[tuple[bytes, bytes]]] = {}

    async def echo(scope, receive, send):  # type: ignore[no-untyped-def]
        if scope["type"] != "http":
            return
        seen["headers"] = scope["headers"]
        await send({"type": "http.response.start", "status": 200, "headers": [(b"content-type", b"text/plain")]})
        await send({"type": "http.response.body", "body": b"ok"})

    with ThreadServer(echo) as upstream:
        proxy = start_proxy(upstream.url)
        r = httpx.get(proxy.url + "/anything?q=1", headers={"Connection": "x-private", "x-private": "1",
                                                             "x-forwarded-for": "10.9.8.7", "Authorization": "Bearer k"})
        assert r.text == "ok"
    headers = {k.lower(): v for k, v in seen["headers"]}
    assert headers[b"x-forwarded-for"] == b"10.9.8.7, 127.0.0.1"
    assert headers[b"x-forwarded-proto"] == b"http"
    assert headers[b"x-forwarded-host"].startswith(b"127.0.0.1:")
    assert headers[b"host"] == upstream.url.removeprefix("http://").encode()
    assert headers[b"authorization"] == b"Bearer k"
    assert b"x-private" not in headers


def test_upstream_refused_is_502_json(start_proxy: Callable[..., ThreadServer]) -> None:
    dead = f"http://127.0.0.1:{free_port()}"
    proxy = start_proxy(dead)
    r = httpx.post(proxy.url + "/v1/chat/completions", json=CHAT)
    assert r.status_code == 502
    error = r.json()["error"]
    # The upstream's address stays in the proxy's log (tests/faults/test_upstream_faults.py).
    assert error == {"message": "the upstream server could not be reached", "type": "upstream_error",
                     "code": "upstream_unreachable"}
    assert dead not in r.text
    m = scrape(proxy.url)
    assert m.get("infermeter_requests_total", endpoint="chat_completions", code="502", outcome="upstream_error") == 1
    assert m.get("infermeter_requests_in_flight") == 0


def _silent_server() -> tuple[socket.socket, threading.Event]:
    """Accepts connections and never answers."""
    listener = socket.socket()
    listener.bind(("127.0.0.1", 0))
    listener.listen()
    stop = threading.Event()
    held: list[socket.socket] = []

    def run() -> None:
        listener.settimeout(0.1)
        while not stop.is_set():
            try:
                held.append(listener.accept()[0])
            except OSError:
                continue
        for s in held:
            s.close()

    threading.Thread(target=run, daemon=True).start()
    return listener, stop


def test_upstream_without_headers_in_time_is_504(start_proxy: Callable[..., ThreadServer]) -> None:
    listener, stop = _silent_server()
    try:
        proxy = start_proxy(f"http://127.0.0.1:{listener.getsockname()[1]}", read_timeout=0.3)
        started = time.monotonic()
        r = httpx.post(proxy.url + "/v1/chat/completions", json=CHAT, timeout=10)
        elapsed = time.monotonic() - started
    finally:
        stop.set()
        listener.close()
    assert r.status_code == 504
    assert r.json()["error"]["code"] == "upstream_timeout"
    assert 0.25 < elapsed < 3
    assert scrape(proxy.url).get("infermeter_requests_total", code="504", outcome="upstream_error") == 1


def test_client_disconnect_closes_upstream_promptly(start_simulator: Callable[..., ThreadServer],
                                                   start_proxy: Callable[..., ThreadServer]) -> None:
    sim = start_simulator(ttft=0.01, tbt=0.05, output_tokens=400)
    proxy = start_proxy(sim.url)
    stats = sim.app.stats
    with httpx.stream("POST", proxy.url + "/v1/chat/completions", json={**CHAT, "max_tokens": 400}, timeout=10) as r:
        it = r.iter_raw()
        for _ in range(3):
            next(it)
        assert stats.active == 1
    closed_at = time.monotonic()
    while stats.active and time.monotonic() - closed_at < 2:
        time.sleep(0.01)
    # The simulator stops generating within a few of its 50 ms token gaps.
    assert stats.active == 0 and time.monotonic() - closed_at < 1.0
    assert stats.cancelled == 1
    deadline = time.monotonic() + 2
    while True:
        m = scrape(proxy.url)
        if m.get("infermeter_requests_total", outcome="cancelled") == 1 or time.monotonic() > deadline:
            break
        time.sleep(0.02)
    assert m.get("infermeter_requests_total", endpoint="chat_completions", code="200", outcome="cancelled") == 1
    assert m.get("infermeter_requests_in_flight") == 0


def test_oversized_body_is_413(start_proxy: Callable[..., ThreadServer], sim: ThreadServer) -> None:
    proxy = start_proxy(sim.url, max_request_bytes=1000)
    r = httpx.post(proxy.url + "/v1/chat/completions", content=b"x" * 5000)
    assert r.status_code == 413
    assert r.json()["error"]["code"] == "request_too_large"
    # Same limit without a Content-Length: a chunked body is cut off as it grows.
    r = httpx.post(proxy.url + "/v1/chat/completions", content=iter([b"y" * 600, b"y" * 600]))
    assert r.status_code == 413
    ok = httpx.post(proxy.url + "/v1/chat/completions", json={**CHAT, "stream": False})
    assert ok.status_code == 200
    assert scrape(proxy.url).get("infermeter_requests_total", code="413", outcome="rejected") == 2


def test_malformed_sse_is_relayed_and_counted(start_proxy: Callable[..., ThreadServer]) -> None:
    body = (b'data: {"model":"m1","choices":[{"index":0,"delta":{"content":"a"}}]}\n\n'
            b'data: {"model":"m1","choices":[{"index":0,"delta":{"content":\n\n'
            b'data: {"model":"m1","choices":[{"index":0,"delta":{"content":"b"},"finish_reason":"stop"}]}\n\n'
            b"data: [DONE]\n\n")

    async def broken(scope, receive, send):  # type: ignore[no-untyped-def]
        if scope["type"] != "http":
            return
        await send({"type": "http.response.start", "status": 200, "headers": [(b"content-type", b"text/event-stream")]})
        for part in (body[:50], body[50:120], body[120:]):
            await send({"type": "http.response.body", "body": part, "more_body": True})
        await send({"type": "http.response.body", "body": b""})

    with ThreadServer(broken) as upstream:
        proxy = start_proxy(upstream.url)
        r = httpx.post(proxy.url + "/v1/chat/completions", json=CHAT)
    assert r.content == body
    m = scrape(proxy.url)
    assert m.get("infermeter_stream_parse_errors_total", endpoint="chat_completions") == 1
    assert m.get("infermeter_tokens_total", endpoint="chat_completions", type="output") == 2
    assert m.get("infermeter_finish_reasons_total", reason="stop") == 1


def test_upstream_break_mid_stream_drops_client_connection(start_proxy: Callable[..., ThreadServer]) -> None:
    listener = socket.socket()
    listener.bind(("127.0.0.1", 0))
    listener.listen()

    def serve_once() -> None:
        conn, _ = listener.accept()
        conn.recv(65536)
        event = b'data: {"choices":[{"text":"a"}]}\n\n'
        conn.sendall(b"HTTP/1.1 200 OK\r\ncontent-type: text/event-stream\r\ntransfer-encoding: chunked\r\n\r\n"
                     + b"%x\r\n" % len(event) + event + b"\r\n")
        time.sleep(0.2)
        conn.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, b"\x01\x00\x00\x00\x00\x00\x00\x00")
        conn.close()

    threading.Thread(target=serve_once, daemon=True).start()
    proxy = start_proxy(f"http://127.0.0.1:{listener.getsockname()[1]}")
    received = b""
    try:
        with httpx.stream("POST", proxy.url + "/v1/completions", json={"model": "m", "prompt": "p", "stream": True}) as r:
            for chunk in r.iter_raw():
                received += chunk
        broke = False
    except httpx.HTTPError:
        broke = True
    listener.close()
    assert received.startswith(b'data: {"choices":[{"text":"a"}]}')
    assert broke, "a broken upstream stream must not end as a clean response"
    m = scrape(proxy.url)
    assert m.get("infermeter_requests_total", endpoint="completions", outcome="upstream_error") == 1
    # The token that did arrive before the break is counted and timed.
    assert m.get("infermeter_tokens_total", endpoint="completions", type="output") == 1
    assert m.get("infermeter_time_to_first_token_seconds_count", endpoint="completions") == 1
    assert httpx.get(proxy.url + "/healthz").status_code == 200


def test_hanging_up_after_the_finish_event_is_not_a_cancellation(start_proxy: Callable[..., ThreadServer]) -> None:
    finish = b'data: {"model":"m1","choices":[{"index":0,"delta":{},"finish_reason":"stop"}]}\n\n'
    parts = [b'data: {"model":"m1","choices":[{"index":0,"delta":{"content":"a"}}]}\n\n', finish]

    async def slow_end(scope, receive, send):  # type: ignore[no-untyped-def]
        if scope["type"] != "http":
            return
        await send({"type": "http.response.start", "status": 200, "headers": [(b"content-type", b"text/event-stream")]})
        for part in parts:
            await send({"type": "http.response.body", "body": part, "more_body": True})
            await asyncio.sleep(0.3)
        await asyncio.sleep(0.7)  # [DONE] comes late; the client does not wait for it
        await send({"type": "http.response.body", "body": b"data: [DONE]\n\n"})

    with ThreadServer(slow_end) as upstream:
        proxy = start_proxy(upstream.url)
        for leave_after in (b"finish_reason\":\"stop", b"content\":\"a"):
            seen = b""
            with httpx.stream("POST", proxy.url + "/v1/chat/completions", json=CHAT) as r:
                for chunk in r.iter_raw():
                    seen += chunk
                    if leave_after in seen:
                        break
            time.sleep(0.2)
    m = scrape(proxy.url)
    assert m.get("infermeter_requests_total", endpoint="chat_completions", outcome="completed") == 1
    assert m.get("infermeter_requests_total", endpoint="chat_completions", outcome="cancelled") == 1


def test_trickling_body_times_out_with_408(sim: ThreadServer, start_proxy: Callable[..., ThreadServer]) -> None:
    proxy = start_proxy(sim.url, body_timeout=0.3)
    with socket.create_connection(("127.0.0.1", proxy.port), timeout=5) as conn:
        conn.sendall(b"POST /v1/chat/completions HTTP/1.1\r\nhost: x\r\ncontent-length: 100\r\n\r\n{\"model\":")
        started = time.monotonic()
        reply = conn.recv(65536)
        elapsed = time.monotonic() - started
    assert reply.startswith(b"HTTP/1.1 408") and b"request_timeout" in reply
    assert 0.25 < elapsed < 3
    m = scrape(proxy.url)
    assert m.get("infermeter_requests_total", code="408", outcome="rejected") == 1
    assert m.get("infermeter_requests_in_flight") == 0


def test_admin_prefix_lets_the_upstreams_own_metrics_and_health_through(start_proxy: Callable[..., ThreadServer]) -> None:
    async def upstream(scope, receive, send):  # type: ignore[no-untyped-def]
        body = b"upstream " + scope["path"].encode()
        await send({"type": "http.response.start", "status": 200, "headers": [(b"content-type", b"text/plain")]})
        await send({"type": "http.response.body", "body": body})

    with ThreadServer(upstream, lifespan="off") as up:
        proxy = start_proxy(up.url, admin_prefix="/infermeter")
        for path in ("/metrics", "/healthz", "/readyz"):
            assert httpx.get(proxy.url + path).text == "upstream " + path
        assert "infermeter_requests_total" in httpx.get(proxy.url + "/infermeter/metrics").text
        assert httpx.get(proxy.url + "/infermeter/healthz").json() == {"status": "ok"}
        assert httpx.get(proxy.url + "/infermeter/readyz").status_code in (200, 503)
        # The relayed /metrics was counted as a request like any other.
        assert 'endpoint="other"' in httpx.get(proxy.url + "/infermeter/metrics").text


@pytest.mark.parametrize("content_type", [b"application/ndjson", b"application/json", b"application/x-ndjson"])
def test_stream_label_follows_the_framing_the_tap_read(start_proxy: Callable[..., ThreadServer], content_type: bytes) -> None:
    lines = [b'{"model":"llama3","message":{"role":"assistant","content":"%s"},"done":false}\n' % t for t in (b"a", b"b")]
    lines.append(b'{"model":"llama3","message":{"role":"assistant","content":""},"done":true,"done_reason":"stop",'
                 b'"prompt_eval_count":3,"eval_count":2}\n')

    async def ollama(scope, receive, send):  # type: ignore[no-untyped-def]
        await receive()
        await send({"type": "http.response.start", "status": 200, "headers": [(b"content-type", content_type)]})
        for line in lines:
            await send({"type": "http.response.body", "body": line, "more_body": True})
            await asyncio.sleep(0.01)
        await send({"type": "http.response.body", "body": b""})

    with ThreadServer(ollama, lifespan="off") as up:
        proxy = start_proxy(up.url)
        body = {"model": "llama3", "stream": True, "messages": [{"role": "user", "content": "hi"}]}
        assert httpx.post(proxy.url + "/api/chat", json=body).content == b"".join(lines)
        m = scrape(proxy.url)
        lab = {"endpoint": "ollama_chat", "model": "llama3"}
        assert m.get("infermeter_time_to_first_token_seconds_count", **lab) == 1
        assert m.get("infermeter_request_duration_seconds_count", stream="true", **lab) == 1
        assert m.get("infermeter_request_duration_seconds_count", stream="false", **lab) == 0
