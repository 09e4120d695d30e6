"""--inject-usage: the client's bytes are those of the stream it asked for; counts are exact."""

from __future__ import annotations

import asyncio
import re
import time
import tracemalloc
from collections.abc import Callable

import httpx
import pytest

from proxy.stream.base import StreamSummary
from proxy.stream.inject import UsageStripper, add_include_usage
from proxy.stream.lines import DEFAULT_LINE_LIMIT
from tests.support.metrics import scrape
from tests.support.servers import ThreadServer

# Wall-clock values that differ between two runs of the same schedule: the creation time,
# and the measured milliseconds in llama.cpp-style timings.
_WALL_CLOCK = re.compile(rb'("created":|"(?:prompt|predicted)_(?:ms|per_token_ms|per_second)":)[0-9.e+-]+')


def _masked(stream: bytes) -> bytes:
    return _WALL_CLOCK.sub(rb"\1", stream)


def _body(path: str) -> dict[str, object]:
    body: dict[str, object] = {"model": "m1", "stream": True, "max_tokens": 6}
    if path == "/v1/chat/completions":
        body["messages"] = [{"role": "user", "content": "a b c"}]
    else:
        body["prompt"] = "a b c"
    return body


@pytest.mark.parametrize("path", ["/v1/chat/completions", "/v1/completions"])
def test_client_bytes_equal_direct_while_counts_are_exact(start_simulator: Callable[..., ThreadServer],
                                                          start_proxy: Callable[..., ThreadServer], path: str) -> None:
    # Two identical simulators that each serve one request: same ids, same text.
    direct_sim = start_simulator(ttft=0.01, tbt=0.002, output_tokens=10, seed=3)
    proxied_sim = start_simulator(ttft=0.01, tbt=0.002, output_tokens=10, seed=3)
    proxy = start_proxy(proxied_sim.url, inject_usage=True)
    direct = httpx.post(direct_sim.url + path, json=_body(path)).content
    relayed = httpx.post(proxy.url + path, json=_body(path)).content
    assert b'"usage"' not in direct  # the client asked for no usage ...
    assert _masked(relayed) == _masked(direct)  # ... and sees none
    m = scrape(proxy.url)
    endpoint = path.removeprefix("/v1/").replace("/", "_")
    assert m.get("infermeter_tokens_total", endpoint=endpoint, type="output") == 6
    assert m.get("infermeter_tokens_total", endpoint=endpoint, type="input") == 3
    assert m.get("infermeter_token_counts_estimated_total", endpoint=endpoint) == 0


def test_without_the_flag_counts_are_estimated(sim: ThreadServer, proxy: ThreadServer) -> None:
    httpx.post(proxy.url + "/v1/chat/completions", json=_body("/v1/chat/completions")).raise_for_status()
    m = scrape(proxy.url)
    assert m.get("infermeter_token_counts_estimated_total", endpoint="chat_completions") == 1
    assert m.get("infermeter_tokens_total", endpoint="chat_completions", type="input") == 0


def test_client_that_asked_for_usage_keeps_it(start_proxy: Callable[..., ThreadServer], sim: ThreadServer) -> None:
    proxy = start_proxy(sim.url, inject_usage=True)
    body = {**_body("/v1/chat/completions"), "stream_options": {"include_usage": True}}
    text = httpx.post(proxy.url + "/v1/chat/completions", json=body).content
    assert b'"choices":[],"usage":{' in text and b'"usage":null' in text


def test_request_rewrite_keeps_other_options() -> None:
    assert add_include_usage(b'{"stream": true, "stream_options": {"x": 1}}') == \
        b'{"stream":true,"stream_options":{"x":1,"include_usage":true}}'
    assert add_include_usage(b'{"stream": false}') is None
    assert add_include_usage(b'{"stream": true, "stream_options": {"include_usage": true}}') is None
    assert add_include_usage(b"not json") is None


@pytest.mark.parametrize("split", range(1, 40, 3))
def test_stripper_independent_of_chunking(split: int) -> None:
    stream = (b'data: {"choices":[{"delta":{"content":"a"}}],"usage":null}\r\n\r\n'
              b'data: {"choices":[],"usage":{"prompt_tokens":1,"completion_tokens":1}}\r\n\r\n'
              b"data: [DONE]\r\n\r\n")
    expected = b'data: {"choices":[{"delta":{"content":"a"}}]}\r\n\r\ndata: [DONE]\r\n\r\n'
    s = UsageStripper()
    out = b"".join(s.feed(stream[i:i + split]) for i in range(0, len(stream), split)) + s.close()
    assert out == expected


_ENDINGS = {"lf": (b"\n", b"\n"), "crlf": (b"\r\n", b"\r\n"), "cr": (b"\r", b"\r"),
            "lf-then-crlf": (b"\n", b"\r\n"), "crlf-then-lf": (b"\r\n", b"\n"), "lf-then-cr": (b"\n", b"\r")}


def _events(line_end: bytes, blank: bytes) -> tuple[bytes, bytes]:
    """An upstream stream with usage (every WHATWG line ending, mixed) and what the client must get."""
    def event(data: bytes) -> bytes:
        return b"data: " + data + line_end + blank
    with_usage = (event(b'{"choices":[{"delta":{"content":"a"}}],"usage":null}')
                  + b": keep-alive" + line_end + blank
                  + event(b'{"choices":[{"delta":{"content":"b"}}],"usage":null}')
                  + event(b'{"choices":[],"usage":{"prompt_tokens":1,"completion_tokens":2}}')
                  + event(b"[DONE]"))
    asked_for = (event(b'{"choices":[{"delta":{"content":"a"}}]}') + b": keep-alive" + line_end + blank
                 + event(b'{"choices":[{"delta":{"content":"b"}}]}') + event(b"[DONE]"))
    return with_usage, asked_for


@pytest.mark.parametrize("ending", list(_ENDINGS))
@pytest.mark.parametrize("split", [1, 2, 3, 5, 8, 13, 1000])
def test_stripper_handles_every_line_ending_under_every_chunking(ending: str, split: int) -> None:
    with_usage, asked_for = _events(*_ENDINGS[ending])
    s = UsageStripper()
    out = b"".join(s.feed(with_usage[i:i + split]) for i in range(0, len(with_usage), split)) + s.close()
    assert out == asked_for


@pytest.mark.parametrize("ending", ["lf-then-crlf", "crlf", "cr"])
def test_each_token_reaches_the_client_as_it_is_produced(start_proxy: Callable[..., ThreadServer], ending: str) -> None:
    line_end, blank = _ENDINGS[ending]
    gap = 0.4

    async def upstream(scope, receive, send):  # type: ignore[no-untyped-def]
        await receive()
        await send({"type": "http.response.start", "status": 200, "headers": [(b"content-type", b"text/event-stream")]})
        for text in (b"a", b"b", b"c"):
            data = b'{"model":"m1","choices":[{"index":0,"delta":{"content":"' + text + b'"}}],"usage":null}'
            await send({"type": "http.response.body", "body": b"data: " + data + line_end + blank, "more_body": True})
            await asyncio.sleep(gap)
        usage = b'{"model":"m1","choices":[],"usage":{"prompt_tokens":3,"completion_tokens":3}}'
        await send({"type": "http.response.body", "body": b"data: " + usage + line_end + blank + b"data: [DONE]" + line_end + blank})

    with ThreadServer(upstream, lifespan="off") as up:
        proxy = start_proxy(up.url, inject_usage=True)
        arrivals: list[float] = []
        received = b""
        with httpx.stream("POST", proxy.url + "/v1/chat/completions", json=_body("/v1/chat/completions"), timeout=10) as r:
            for part in r.iter_raw():
                received += part
                arrivals.extend(time.monotonic() for _ in range(part.count(b'"content"')))
    assert len(arrivals) == 3 and b'"usage"' not in received
    # Each token arrived when it was sent, not held until the stream closed.
    assert all(later - earlier > gap / 2 for earlier, later in zip(arrivals, arrivals[1:]))
    m = scrape(proxy.url)
    assert m.get("infermeter_tokens_total", endpoint="chat_completions", type="output") == 3


def _usage_stream(huge: bytes) -> tuple[bytes, bytes, bytes]:
    """(before, the huge event, after): a stream with usage whose middle event is ``huge``."""
    def event(content: bytes, usage: bytes = b',"usage":null') -> bytes:
        return b'data: {"model":"m1","choices":[{"index":0,"delta":{"content":"' + content + b'"}}]' + usage + b"}\n\n"

    after = (event(b"b") + b'data: {"model":"m1","choices":[],"usage":{"prompt_tokens":3,"completion_tokens":3}}\n\n'
             + b"data: [DONE]\n\n")
    return event(b"a"), event(huge), after


@pytest.mark.parametrize("split", [1, 7, 30, 64])
def test_stripper_gives_up_on_an_event_over_the_limit(split: int) -> None:
    before, huge, after = _usage_stream(b"x" * 200)
    stream = before + huge + after
    summary = StreamSummary()
    s = UsageStripper(summary, limit=100)
    out = b""
    for i in range(0, len(stream), split):
        out += s.feed(stream[i:i + split])
        assert s._events.pending <= 100 + split, "never holds more than the limit and one read"
    out += s.close()
    # What it stripped before stays stripped; from the oversized event on, the server's bytes.
    assert out == before.replace(b',"usage":null', b"") + huge + after
    assert summary.parse_errors == 1


def test_stripper_releases_a_held_finish_chunk_when_it_gives_up() -> None:
    finish = b'data: {"choices":[{"index":0,"delta":{},"finish_reason":"stop"}],"usage":null}\n\n'
    huge = b'data: {"choices":[],"x":"' + b"x" * 300 + b'"}\n\n'
    s = UsageStripper(None, limit=100)
    out = b"".join(s.feed(part) for part in (finish, huge[:150], huge[150:])) + s.close()
    assert out == finish.replace(b',"usage":null', b"") + huge


def test_stripper_holds_no_more_than_the_limit_of_an_endless_event() -> None:
    # Issue 18: a 40 MB event was held whole (+67 MiB), copied again on every read.
    s = UsageStripper()
    piece = b"x" * 65536
    tracemalloc.start()
    try:
        first = s.feed(b'data: {"choices":[{"index":0,"delta":{"content":"')
        passed = 0
        for _ in range(40 * 16):  # 40 MiB of one event, 64 KiB per read
            passed += len(s.feed(piece))
        peak = tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()
    # The limit held, and for the moment it lets go a copy of it on its way out.
    assert peak < DEFAULT_LINE_LIMIT * 2.5, f"peak {peak / 2**20:.0f} MiB"
    assert first == b""
    assert passed >= 40 * 2**20 - DEFAULT_LINE_LIMIT - 65536, "the rest of the event went out as it came"


def test_an_endless_event_is_passed_on_as_it_comes(start_proxy: Callable[..., ThreadServer]) -> None:
    block = b"x" * 2**20
    before, huge, after = _usage_stream(block * 20)
    pause = 1.0
    resumed: list[float] = []

    async def upstream(scope, receive, send):  # type: ignore[no-untyped-def]
        await receive()
        await send({"type": "http.response.start", "status": 200, "headers": [(b"content-type", b"text/event-stream")]})
        await send({"type": "http.response.body", "body": before, "more_body": True})
        for i in range(0, len(huge), len(block)):
            if i == 18 * len(block):
                await asyncio.sleep(pause)  # the event is not over: its first bytes must be on their way
                resumed.append(time.monotonic())
            await send({"type": "http.response.body", "body": huge[i:i + len(block)], "more_body": True})
        await send({"type": "http.response.body", "body": after})

    with ThreadServer(upstream, lifespan="off") as up:
        proxy = start_proxy(up.url, inject_usage=True)
        received = bytearray()
        past_limit: float | None = None
        with httpx.stream("POST", proxy.url + "/v1/chat/completions", json=_body("/v1/chat/completions"), timeout=30) as r:
            for part in r.iter_raw():
                received += part
                if past_limit is None and len(received) > len(before) + 17 * 2**20:
                    past_limit = time.monotonic()
    assert past_limit is not None and resumed and past_limit < resumed[0], "the event was held until its end"
    assert bytes(received) == before.replace(b',"usage":null', b"") + huge + after
    m = scrape(proxy.url)
    assert m.get("infermeter_tokens_total", endpoint="chat_completions", type="output") == 3
    # One for the stripper giving up, one for the tap, which cannot read a 20 MiB line either.
    assert m.get("infermeter_stream_parse_errors_total", endpoint="chat_completions") == 2
