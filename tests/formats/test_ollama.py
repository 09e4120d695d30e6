"""The ollama client through the proxy to the simulator: chat, generate, embed."""

from __future__ import annotations

from typing import Any

import ollama

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

MESSAGES = [{"role": "user", "content": "why is the sky blue"}]


def _client(base: str) -> ollama.Client:
    return closing(ollama.Client(host=base, timeout=10))


def test_chat_stream_and_whole(route: Route) -> None:
    def stream(base: str) -> list[dict[str, Any]]:
        return [part.model_dump() for part in _client(base).chat(model="llama-s", messages=MESSAGES, stream=True)]

    parts, d = through(route, stream)
    assert [p["done"] for p in parts] == [False] * 8 + [True]
    check_stream(d, "ollama_chat", "llama-s", inputs=5, outputs=8, reason="stop")

    def whole(base: str) -> dict[str, Any]:
        return _client(base).chat(model="llama-j", messages=MESSAGES, options={"num_predict": 5}).model_dump()

    reply, d = through(route, whole)
    assert reply["done_reason"] == "length"
    check_whole(d, "ollama_chat", "llama-j", inputs=5, outputs=5, reason="length", tokens=5)


def test_generate_stream_and_whole(route: Route) -> None:
    def stream(base: str) -> list[dict[str, Any]]:
        return [part.model_dump() for part in _client(base).generate(model="gen-s", prompt="one two three", stream=True)]

    parts, d = through(route, stream)
    assert parts[-1]["eval_count"] == 8
    check_stream(d, "ollama_generate", "gen-s", inputs=3, outputs=8, reason="stop")

    def whole(base: str) -> dict[str, Any]:
        return _client(base).generate(model="gen-j", prompt="one two three").model_dump()

    reply, d = through(route, whole)
    assert len(reply["response"].split()) == 8
    check_whole(d, "ollama_generate", "gen-j", inputs=3, outputs=8, reason="stop")


def test_embed_and_legacy_embeddings(route: Route) -> None:
    def embed(base: str) -> dict[str, Any]:
        return _client(base).embed(model="nomic", input=["one two", "three"]).model_dump()

    answer, d = through(route, embed)
    assert len(answer["embeddings"]) == 2
    check_counts(d, "embeddings", "nomic", inputs=3, outputs=0, reason=None, stream=False)
    check_no_stream_timing(d, "embeddings", "nomic", ready=TTFT)

    def legacy(base: str) -> dict[str, Any]:
        return _client(base).embeddings(model="nomic-old", prompt="one two").model_dump()

    answer, d = through(route, legacy)
    assert len(answer["embedding"]) == 16
    # /api/embeddings states no counts: the request is counted, its tokens are not.
    check_counts(d, "embeddings", "nomic-old", inputs=None, outputs=0, reason=None, stream=False)
