"""--inject-usage against llama-server: exact counts, and the client's stream kept intact.

llama-server differs by endpoint: chat streams honour ``stream_options`` with a separate
``choices: []`` usage chunk (which then also carries ``timings``), while /v1/completions
ignores it and always puts usage into the finish chunk. The proxy may remove only the
chunk it caused, never the finish chunk.
"""

from __future__ import annotations

import pytest

from tests.support.servers import ChildProcess

from .client import chat_body, completion_body, stream, text_of
from .conftest import MODEL_ALIAS, LlamaServer
from tests.support.metrics import after_requests, scrape

pytestmark = pytest.mark.llamacpp

PATHS = {"chat_completions": "/v1/chat/completions", "completions": "/v1/completions"}


@pytest.mark.parametrize("endpoint", list(PATHS))
def test_injected_usage_gives_exact_counts(
    llama_server: LlamaServer, proxy_inject: ChildProcess, endpoint: str
) -> None:
    body = chat_body(12) if endpoint == "chat_completions" else completion_body(12)
    proxy_before, server_before = scrape(proxy_inject.url), scrape(llama_server.url)
    result = stream(proxy_inject.url, PATHS[endpoint], body)
    proxy_delta = after_requests(proxy_inject.url, proxy_before, 1) - proxy_before
    server_delta = scrape(llama_server.url) - server_before

    out = proxy_delta.get("infermeter_tokens_total", endpoint=endpoint, model=MODEL_ALIAS, type="output")
    inp = proxy_delta.get("infermeter_tokens_total", endpoint=endpoint, model=MODEL_ALIAS, type="input")
    assert out == server_delta.get("llamacpp:tokens_predicted_total") == 12
    assert inp == server_delta.get("llamacpp:prompt_tokens_total") > 0
    assert proxy_delta.get("infermeter_token_counts_estimated_total", endpoint=endpoint) == 0
    # The client asked for no usage: it gets no usage-only chunk, but still every token,
    # the finish chunk and [DONE].
    assert not [c for c in result.chunks if not c.get("choices")]
    assert sum(1 for c in result.chunks if text_of(c)) == 12
    assert [c["choices"][0]["finish_reason"] for c in result.chunks if c["choices"][0].get("finish_reason")] == [
        "length"
    ]
    assert result.done
