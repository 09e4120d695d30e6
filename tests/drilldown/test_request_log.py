"""--request-log over real sockets: one JSON line per request, whatever became of it."""

from __future__ import annotations

import json
import os
import threading
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import httpx
import openai

from proxy.drilldown.requestlog import LINE_MAX, rfc3339, writes
from tests.drilldown.otlp import dead_port
from tests.support.metrics import scrape
from tests.support.servers import ThreadServer
from tests.support.sdk import closing
from tests.support.wait import wait_for

SECRETS = ("sk-SECRET-IN-AUTHORIZATION", "SECRET-IN-API-KEY", "SECRET-IN-QUERY", "SECRET-IN-PROMPT", "SECRET-IN-COOKIE")
FIELDS = {"time", "request_id", "trace_id", "span_id", "method", "path", "endpoint", "model", "tenant", "status", "outcome",
          "stream", "ttft_s", "tpot_s", "duration_s", "upstream_headers_s", "input_tokens", "output_tokens",
          "tokens_estimated", "finish_reason", "checks_failed", "upstream_error"}


def _lines(proxy: ThreadServer, path: Path, requests: int) -> list[dict[str, Any]]:
    # The relay records a request just after its last byte went out, and hands the line
    # over in the same step: once the metrics count it, its line is queued.
    wait_for(lambda: scrape(proxy.url).get("infermeter_requests_total") >= requests, f"{requests} requests recorded")
    proxy.app.drilldown.close()  # flush, as shutdown does
    text = path.read_text()
    assert text.endswith("\n")
    return [json.loads(line) for line in text.splitlines()]


def test_one_line_per_request_equal_to_the_metrics(tmp_path: Path, upstream: ThreadServer,
                                                   start_proxy: Callable[..., ThreadServer]) -> None:
    log = tmp_path / "requests.jsonl"
    proxy = start_proxy(upstream.url, request_log=str(log), max_request_bytes=4096)
    client = closing(openai.OpenAI(base_url=proxy.url + "/v1", api_key=SECRETS[0], max_retries=0,
                           default_headers={"x-api-key": SECRETS[1], "cookie": f"session={SECRETS[4]}"},
                           default_query={"key": SECRETS[2]}))
    started = time.time()
    stream = client.chat.completions.create(model="m-stream", messages=[{"role": "user", "content": SECRETS[3]}],
                                            stream=True, stream_options={"include_usage": True})
    assert sum(1 for _ in stream) > 0
    client.chat.completions.create(model="m-plain", messages=[{"role": "user", "content": SECRETS[3]}])
    # 413: the body is over the proxy's limit.
    big = httpx.post(proxy.url + "/v1/chat/completions?key=" + SECRETS[2],
                     json={"model": "m-big", "messages": [{"role": "user", "content": SECRETS[3] * 500}]})
    assert big.status_code == 413
    # Cancelled: the client leaves after the first bytes.
    with httpx.stream("POST", proxy.url + "/v1/chat/completions", headers={"x-request-id": "leaver-1"},
                      json={"model": "m-gone", "messages": [], "stream": True, "max_tokens": 500}) as r:
        next(r.iter_raw())
    lines = _lines(proxy, log, 4)
    text = log.read_text()
    for secret in SECRETS:
        assert secret not in text

    assert len(lines) == 4
    assert all(set(line) == FIELDS for line in lines)
    by_model = {line["model"]: line for line in lines}
    m = scrape(proxy.url)
    s = by_model["m-stream"]
    assert s["method"] == "POST" and s["path"] == "/v1/chat/completions" and s["endpoint"] == "chat_completions"
    assert (s["status"], s["outcome"], s["stream"]) == (200, "completed", True)
    assert m.get("infermeter_finish_reasons_total", model="m-stream", reason=s["finish_reason"]) == 1
    assert s["time"].endswith("Z") and s["time"] >= rfc3339(int(started * 1e9) - 1_000_000)
    assert len(s["request_id"]) == 32 and s["trace_id"] is None
    assert abs(s["ttft_s"] - m.get("infermeter_time_to_first_token_seconds_sum", model="m-stream")) < 1e-5
    assert abs(s["tpot_s"] - m.get("infermeter_time_per_output_token_seconds_sum", model="m-stream")) < 1e-5
    assert abs(s["duration_s"] - m.get("infermeter_request_duration_seconds_sum", model="m-stream")) < 1e-5
    assert s["output_tokens"] == m.get("infermeter_tokens_total", model="m-stream", type="output")
    assert s["input_tokens"] == m.get("infermeter_tokens_total", model="m-stream", type="input")
    assert s["tokens_estimated"] is False and s["upstream_headers_s"] > 0
    p = by_model["m-plain"]
    assert (p["stream"], p["ttft_s"], p["tpot_s"], p["status"]) == (False, None, None, 200)
    assert p["output_tokens"] == m.get("infermeter_tokens_total", model="m-plain", type="output")
    rejected = [line for line in lines if line["status"] == 413]
    assert len(rejected) == 1 and rejected[0]["outcome"] == "rejected" and rejected[0]["upstream_headers_s"] is None
    gone = by_model["m-gone"]
    assert (gone["outcome"], gone["request_id"], gone["status"]) == ("cancelled", "leaver-1", 200)
    assert m.get("infermeter_requests_total", model="m-gone", outcome="cancelled") == 1
    assert m.get("infermeter_request_log_lines_total") == 4
    assert m.get("infermeter_request_log_dropped_total") == 0


def test_upstream_down_is_logged(tmp_path: Path, start_proxy: Callable[..., ThreadServer]) -> None:
    log = tmp_path / "requests.jsonl"
    proxy = start_proxy(f"http://127.0.0.1:{dead_port()}", request_log=str(log))
    assert httpx.post(proxy.url + "/v1/completions", json={"model": "m", "prompt": "x"}).status_code == 502
    (line,) = _lines(proxy, log, 1)
    assert (line["status"], line["outcome"], line["endpoint"]) == (502, "upstream_error", "completions")
    # The model label the metrics used: a name only a client gave takes no label slot.
    (series,) = scrape(proxy.url).series("infermeter_requests_total")
    assert line["model"] == series["model"] == "other"


def test_a_writer_that_cannot_keep_up_drops_and_counts(tmp_path: Path, upstream: ThreadServer,
                                                       start_proxy: Callable[..., ThreadServer]) -> None:
    # A pipe nobody reads: the writer blocks once the pipe's buffer is full.
    fifo = tmp_path / "requests.fifo"
    os.mkfifo(fifo)
    reader = os.open(fifo, os.O_RDONLY | os.O_NONBLOCK)
    try:
        proxy = start_proxy(upstream.url, request_log=str(fifo), request_log_queue=8)
        # Fill the pipe's buffer (64 KiB on Linux) so the writer is stuck in write().
        _fill(proxy.app.drilldown.request_log.fd)
        body = {"model": "m", "messages": [], "stream": True}
        n = 40
        with httpx.Client() as client:
            start = time.perf_counter()
            for _ in range(n):
                client.post(proxy.url + "/v1/chat/completions", json=body).raise_for_status()
            elapsed = time.perf_counter() - start
        assert elapsed < n * 0.2, "streams did not wait for the log"
        m = scrape(proxy.url)
        dropped = m.get("infermeter_request_log_dropped_total", reason="queue_full")
        assert dropped >= n - 8 - 1
        # Drain the pipe: the writer catches up with what it holds, and it is valid JSON.
        got = bytearray()
        done = threading.Event()

        def drain() -> None:
            while not done.is_set():
                try:
                    chunk = os.read(reader, 1 << 16)
                except BlockingIOError:
                    time.sleep(0.01)
                    continue
                got.extend(chunk)

        t = threading.Thread(target=drain, daemon=True)
        t.start()
        deadline = time.monotonic() + 10
        while scrape(proxy.url).get("infermeter_request_log_lines_total") + dropped < n and time.monotonic() < deadline:
            time.sleep(0.05)
        done.set()
        t.join()
        lines = [json.loads(x) for x in bytes(got).split(b"\n") if x.strip()]
        written = scrape(proxy.url).get("infermeter_request_log_lines_total")
        assert len(lines) == written and written + dropped == n
    finally:
        os.close(reader)


def _fill(fd: int) -> None:
    os.set_blocking(fd, False)
    try:
        while True:
            os.write(fd, b"\n" * 4096)
    except BlockingIOError:
        pass
    finally:
        os.set_blocking(fd, True)


def test_a_line_longer_than_pipe_buf_is_cut_to_fit(tmp_path: Path, upstream: ThreadServer,
                                                   start_proxy: Callable[..., ThreadServer]) -> None:
    # A path of 6,000 characters (the request line may be 8 KiB): the line would not fit
    # one atomic pipe write, so its strings are cut and the line says so.
    log = tmp_path / "requests.jsonl"
    proxy = start_proxy(upstream.url, request_log=str(log))
    long_path = "/v1/" + "p" * 6000
    assert httpx.get(proxy.url + long_path, headers={"x-request-id": "long-1"}).status_code == 404
    assert httpx.get(proxy.url + "/v1/models", headers={"x-request-id": "short-1"}).status_code == 200
    _lines(proxy, log, 2)
    raw = log.read_bytes().splitlines(keepends=True)
    assert len(raw) == 2 and all(len(r) <= LINE_MAX for r in raw)
    long, short = (json.loads(r) for r in raw)
    assert set(long) == FIELDS | {"truncated"} and long["truncated"] is True
    assert 512 <= len(long["path"]) < 6000 and long_path.startswith(long["path"])
    assert (long["request_id"], long["status"], long["outcome"]) == ("long-1", 404, "completed")
    assert set(short) == FIELDS and short["path"] == "/v1/models"


def test_writes_are_whole_lines_of_at_most_the_limit() -> None:
    lines = [b"a" * n + b"\n" for n in (10, 4000, 95, 4095, 1, 1, 3000, 1100)]
    runs = writes(lines, 4096)
    assert [line for run in runs for line in run] == lines
    assert all(sum(map(len, run)) <= 4096 for run in runs)
    # Each run is as full as the next line allows (11 + 4001 bytes leave no room for 96);
    # a line of exactly the limit is a run of its own.
    assert [[len(line) for line in run] for run in runs] == [[11, 4001], [96], [4096], [2, 2, 3001], [1101]]
    assert writes(lines, None) == [lines]
    assert writes([], 4096) == []
