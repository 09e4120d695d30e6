"""The openai SDK through the proxy to the simulator: chat, completions, responses, embeddings."""

from __future__ import annotations

from typing import Any

import openai
from openai.types.chat import ChatCompletionMessageParam

from tests.formats.compare import through
from tests.formats.conftest import Route
from tests.formats.expect import (
    TTFT,
    check_counts,
    check_no_stream_timing,
    check_stream,
    check_whole,
)
from tests.support.sdk import closing

MESSAGES: list[ChatCompletionMessageParam] = [{"role": "user", "content": "one two three four"}]


def _client(base: str) -> openai.OpenAI:
    return closing(openai.OpenAI(base_url=base + "/v1", api_key="sk-test", max_retries=0, timeout=10))


def _dump(items: Any) -> list[dict[str, Any]]:
    return [item.model_dump() for item in items]


def test_chat_stream_with_usage_and_json(route: Route) -> None:
    def stream(base: str) -> list[dict[str, Any]]:
        return _dump(_client(base).chat.completions.create(
            model="chat-s", messages=MESSAGES, stream=True, stream_options={"include_usage": True}))

    chunks, d = through(route, stream)
    assert chunks[-1]["usage"]["completion_tokens"] == 8
    check_stream(d, "chat_completions", "chat-s", inputs=4, outputs=8, reason="stop")

    def whole(base: str) -> dict[str, Any]:
        return _client(base).chat.completions.create(model="chat-j", messages=MESSAGES, max_tokens=5).model_dump()

    answer, d = through(route, whole)
    assert answer["choices"][0]["finish_reason"] == "length"
    check_whole(d, "chat_completions", "chat-j", inputs=4, outputs=5, reason="length", tokens=5)


def test_completions_stream_without_usage_is_estimated(route: Route) -> None:
    def stream(base: str) -> list[dict[str, Any]]:
        return _dump(_client(base).completions.create(model="cmpl-s", prompt="one two", stream=True))

    chunks, d = through(route, stream)
    assert all(c["usage"] is None for c in chunks)
    # No usage in the stream: output counted from token events, input unknown.
    check_stream(d, "completions", "cmpl-s", inputs=None, outputs=8, reason="stop", estimated=True)

    def whole(base: str) -> dict[str, Any]:
        return _client(base).completions.create(model="cmpl-j", prompt="one two").model_dump()

    _, d = through(route, whole)
    check_whole(d, "completions", "cmpl-j", inputs=2, outputs=8, reason="stop")


def test_responses_stream_and_incomplete_json(route: Route) -> None:
    def stream(base: str) -> list[dict[str, Any]]:
        return _dump(_client(base).responses.create(model="resp-s", input="one two three", stream=True))

    events, d = through(route, stream)
    assert [e["type"] for e in events].count("response.output_text.delta") == 8
    assert events[-1]["type"] == "response.completed"
    check_stream(d, "responses", "resp-s", inputs=3, outputs=8, reason="stop")

    def whole(base: str) -> dict[str, Any]:
        return _client(base).responses.create(model="resp-j", input="one two three", max_output_tokens=5).model_dump()

    answer, d = through(route, whole)
    assert answer["status"] == "incomplete"
    check_whole(d, "responses", "resp-j", inputs=3, outputs=5, reason="length", tokens=5)


def test_embeddings(route: Route) -> None:
    def embed(base: str) -> dict[str, Any]:
        return _client(base).embeddings.create(model="emb", input=["one two", "three four five"]).model_dump()

    answer, d = through(route, embed)
    assert len(answer["data"]) == 2 and answer["usage"]["prompt_tokens"] == 5
    check_counts(d, "embeddings", "emb", inputs=5, outputs=0, reason=None, stream=False)
    check_no_stream_timing(d, "embeddings", "emb", ready=TTFT)
