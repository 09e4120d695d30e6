"""--inject-usage: the client's bytes are those of the stream it asked for; counts are exact."""

from __future__ import annotations

import re
from collections.abc import Callable

import httpx
import pytest

from proxy.stream.inject import UsageStripper, add_include_usage
from tests.support.metrics import scrape
from tests.support.servers import ThreadServer

_CREATED = re.compile(rb'"created":\d+')


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
    assert _CREATED.sub(b"", relayed) == _CREATED.sub(b"", direct)  # ... and sees none
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
