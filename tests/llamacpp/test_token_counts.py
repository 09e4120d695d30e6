"""infermeter's token totals agree with llama-server's usage and its own counters."""

from __future__ import annotations

from typing import Any

import httpx
import pytest

from tests.support.servers import ChildProcess

from .client import chat_body, completion_body, stream, text_of
from .conftest import MODEL_ALIAS, LlamaServer
from tests.support.metrics import after_requests, scrape

pytestmark = pytest.mark.llamacpp

PATHS = {"chat_completions": "/v1/chat/completions", "completions": "/v1/completions"}
MAX_TOKENS = 24


def _body(endpoint: str, **extra: Any) -> dict[str, Any]:
    return chat_body(MAX_TOKENS, **extra) if endpoint == "chat_completions" else completion_body(MAX_TOKENS, **extra)


@pytest.mark.parametrize("streamed", [True, False], ids=["stream", "json"])
@pytest.mark.parametrize("endpoint", list(PATHS))
def test_exact_counts_equal_usage_and_server_counters(
    llama_server: LlamaServer, proxy: ChildProcess, endpoint: str, streamed: bool
) -> None:
    proxy_before, server_before = scrape(proxy.url), scrape(llama_server.url)
    if streamed:
        result = stream(proxy.url, PATHS[endpoint], _body(endpoint, stream_options={"include_usage": True}))
        usage = result.usage
    else:
        reply = httpx.post(proxy.url + PATHS[endpoint], json=_body(endpoint, stream=False), timeout=60)
        reply.raise_for_status()
        usage = reply.json()["usage"]
    proxy_delta = after_requests(proxy.url, proxy_before, 1) - proxy_before
    server_delta = scrape(llama_server.url) - server_before

    assert usage is not None and usage["completion_tokens"] > 0
    out = proxy_delta.get("infermeter_tokens_total", endpoint=endpoint, model=MODEL_ALIAS, type="output")
    inp = proxy_delta.get("infermeter_tokens_total", endpoint=endpoint, model=MODEL_ALIAS, type="input")
    assert out == usage["completion_tokens"] == server_delta.get("llamacpp:tokens_predicted_total")
    assert inp == usage["prompt_tokens"] == server_delta.get("llamacpp:prompt_tokens_total")
    assert proxy_delta.get("infermeter_token_counts_estimated_total", endpoint=endpoint) == 0


def test_chat_stream_without_usage_counts_one_token_per_chunk(llama_server: LlamaServer, proxy: ChildProcess) -> None:
    """No include_usage: the proxy counts token events, which on llama-server is exact."""
    proxy_before, server_before = scrape(proxy.url), scrape(llama_server.url)
    result = stream(proxy.url, PATHS["chat_completions"], _body("chat_completions"))
    proxy_delta = after_requests(proxy.url, proxy_before, 1) - proxy_before
    server_delta = scrape(llama_server.url) - server_before

    assert result.usage is None, "this llama-server sends usage in chat streams unasked; the test premise is gone"
    token_chunks = sum(1 for c in result.chunks if text_of(c))
    predicted = server_delta.get("llamacpp:tokens_predicted_total")
    assert token_chunks == predicted > 0
    out = proxy_delta.get("infermeter_tokens_total", endpoint="chat_completions", model=MODEL_ALIAS, type="output")
    assert out == predicted
    assert proxy_delta.get("infermeter_token_counts_estimated_total", endpoint="chat_completions") == 1
