"""The official openai SDK through the proxy gets what it gets talking to the simulator."""

from __future__ import annotations

import openai
from openai.types.chat import ChatCompletionMessageParam
import pytest

from tests.support.metrics import scrape
from tests.support.servers import ThreadServer
from tests.support.sdk import closing

MESSAGES: list[ChatCompletionMessageParam] = [{"role": "user", "content": "one two three four"}]


def _client(url: str) -> openai.OpenAI:
    return closing(openai.OpenAI(base_url=url + "/v1", api_key="sk-test-secret", max_retries=0, timeout=10))


def _chat(client: openai.OpenAI, stream: bool) -> object:
    if stream:
        chunks = client.chat.completions.create(model="m1", messages=MESSAGES, stream=True,
                                                stream_options={"include_usage": True}, max_tokens=9)
        return [c.model_dump(exclude={"id", "created"}) for c in chunks]
    return _client_dump(client.chat.completions.create(model="m1", messages=MESSAGES, max_tokens=9))


def _completion(client: openai.OpenAI, stream: bool) -> object:
    if stream:
        chunks = client.completions.create(model="m1", prompt="one two", stream=True, max_tokens=7)
        return [c.model_dump(exclude={"id", "created"}) for c in chunks]
    return _client_dump(client.completions.create(model="m1", prompt="one two", max_tokens=7))


def _client_dump(obj: object) -> object:
    return obj.model_dump(exclude={"id", "created"})  # type: ignore[attr-defined]


def _cache_reports(obj: object) -> list[int]:
    if isinstance(obj, dict):
        own = [v for k, v in obj.items() if k in ("cached_tokens", "cache_n") and isinstance(v, int)]
        return own + [n for v in obj.values() for n in _cache_reports(v)]
    if isinstance(obj, list):
        return [n for v in obj for n in _cache_reports(v)]
    return []


def _comparable(obj: object) -> object:
    """Without what differs between two calls by design: the simulator's measured timings
    (wall clock), and its prompt cache (the second of two same prompts is served from it)."""
    if isinstance(obj, dict):
        return {k: _comparable(v) for k, v in obj.items() if k not in ("timings", "cached_tokens")}
    if isinstance(obj, list):
        return [_comparable(v) for v in obj]
    return obj


@pytest.mark.parametrize("stream", [True, False], ids=["stream", "json"])
@pytest.mark.parametrize("call", [_chat, _completion], ids=["chat", "completions"])
def test_sdk_through_proxy_equals_direct(sim: ThreadServer, proxy: ThreadServer, call: object, stream: bool) -> None:
    direct = call(_client(sim.url), stream)  # type: ignore[operator]
    relayed = call(_client(proxy.url), stream)  # type: ignore[operator]
    assert _comparable(relayed) == _comparable(direct)
    assert relayed  # a response with content, not two empty lists
    # The relayed call repeated the direct one's prompt: the server's cache report came through.
    assert _cache_reports(direct) and set(_cache_reports(direct)) == {0}
    assert _cache_reports(relayed) and 0 not in _cache_reports(relayed)


def test_sdk_requests_are_labelled_and_counted(sim: ThreadServer, proxy: ThreadServer) -> None:
    client = _client(proxy.url)
    _chat(client, stream=True)
    _chat(client, stream=False)
    _completion(client, stream=True)
    m = scrape(proxy.url)
    assert m.get("infermeter_requests_total", endpoint="chat_completions", model="m1", code="200", outcome="completed") == 2
    assert m.get("infermeter_requests_total", endpoint="completions", model="m1", code="200", outcome="completed") == 1
    # Chat asked for usage: exact counts; completions did not: counted from token events.
    assert m.get("infermeter_tokens_total", endpoint="chat_completions", model="m1", type="output") == 18
    assert m.get("infermeter_tokens_total", endpoint="chat_completions", model="m1", type="input") == 8
    assert m.get("infermeter_tokens_total", endpoint="completions", model="m1", type="output") == 7
    assert m.get("infermeter_token_counts_estimated_total", endpoint="completions") == 1
    assert m.get("infermeter_token_counts_estimated_total", endpoint="chat_completions") == 0
    assert m.get("infermeter_time_to_first_token_seconds_count", endpoint="chat_completions") == 1
    assert m.get("infermeter_request_duration_seconds_count", endpoint="chat_completions", stream="false") == 1
    assert m.get("infermeter_finish_reasons_total", endpoint="chat_completions", reason="length") == 2
    assert m.get("infermeter_requests_in_flight") == 0
    assert "sk-test-secret" not in m.text
