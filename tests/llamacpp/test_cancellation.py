"""A client that leaves mid-stream stops the model, and infermeter says it was cancelled."""

from __future__ import annotations

import time

import pytest

from tests.support.servers import ChildProcess
from tests.support.wait import poll

from .client import chat_body, stream
from .conftest import MODEL_ALIAS, LlamaServer
from tests.support.metrics import after_requests, scrape

pytestmark = pytest.mark.llamacpp

LONG = 2000
READ_TOKENS = 5


def test_client_disconnect_stops_generation(llama_server: LlamaServer, proxy: ChildProcess) -> None:
    proxy_before, server_before = scrape(proxy.url), scrape(llama_server.url)
    assert server_before.get("llamacpp:requests_processing") == 0
    busy_while_streaming: list[float] = []

    def leave_after_a_few(tokens: int) -> bool:
        if tokens < READ_TOKENS:
            return False
        busy_while_streaming.append(scrape(llama_server.url).get("llamacpp:requests_processing"))
        return True

    result = stream(proxy.url, "/v1/chat/completions", chat_body(LONG, ignore_eos=True), stop=leave_after_a_few)
    left_at = time.monotonic()
    processing = poll(lambda: scrape(llama_server.url).get("llamacpp:requests_processing"), lambda v: v == 0, 1.0)
    freed_after = time.monotonic() - left_at
    proxy_delta = after_requests(proxy.url, proxy_before, 1) - proxy_before
    server_delta = scrape(llama_server.url) - server_before

    assert busy_while_streaming == [1] and not result.done
    assert processing == 0, f"llama-server still processing {freed_after:.2f} s after the client left"
    cancelled = proxy_delta.get(
        "infermeter_requests_total", endpoint="chat_completions", model=MODEL_ALIAS, outcome="cancelled"
    )
    assert cancelled == 1
    assert proxy_delta.get("infermeter_requests_total", outcome="completed") == 0
    # The model stopped right away: measured 6-7 tokens generated for 5 read (freed
    # 40-160 ms after the client left), of the 2000 asked for.
    assert READ_TOKENS <= server_delta.get("llamacpp:tokens_predicted_total") < READ_TOKENS + 50
