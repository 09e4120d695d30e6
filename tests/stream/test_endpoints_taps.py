from __future__ import annotations

import pytest

from proxy.stream.base import RequestInfo
from proxy.stream.embeddings import EmbeddingsTap
from proxy.stream.endpoints import ENDPOINTS, classify
from proxy.stream.jsonbody import JSONBodyTap
from proxy.stream.ndjson import NDJSONTap
from proxy.stream.sse import SSETap
from proxy.stream.taps import framing, make_tap


@pytest.mark.parametrize(
    "path,endpoint",
    [
        ("/v1/chat/completions", "chat_completions"),
        ("/v1/chat/completions?api-version=2024-10-21", "chat_completions"),
        ("/v1/completions", "completions"),
        ("/v1/responses", "responses"),
        ("/v1/messages", "messages"),
        ("/v1/embeddings", "embeddings"),
        ("/api/embed", "embeddings"),
        ("/api/embeddings", "embeddings"),
        ("/api/chat", "ollama_chat"),
        ("/api/generate", "ollama_generate"),
        ("/generate", "tgi_generate"),
        ("/generate_stream", "tgi_generate"),
        ("/completion", "llamacpp_completion"),
        ("/v1/models", "other"),
        ("/health", "other"),
        ("/", "other"),
        ("/v1/chat/completions/x", "other"),
        ("/V1/CHAT/COMPLETIONS", "other"),
    ],
)
def test_classify(path: str, endpoint: str) -> None:
    assert classify(path) == endpoint
    assert endpoint in ENDPOINTS


STREAM = RequestInfo(stream=True)
PLAIN = RequestInfo(stream=False)


@pytest.mark.parametrize(
    "endpoint,content_type,info,kind",
    [
        ("chat_completions", b"text/event-stream; charset=utf-8", STREAM, SSETap),
        ("chat_completions", b"Text/Event-Stream", PLAIN, SSETap),
        ("chat_completions", b"application/json", PLAIN, JSONBodyTap),
        ("chat_completions", None, STREAM, SSETap),
        ("chat_completions", None, PLAIN, JSONBodyTap),
        ("chat_completions", b"text/html", PLAIN, None),
        ("chat_completions", b"application/x-ndjson", STREAM, None),
        ("ollama_chat", b"application/x-ndjson", STREAM, NDJSONTap),
        ("ollama_generate", b"application/json; charset=utf-8", STREAM, NDJSONTap),
        ("ollama_generate", b"application/json; charset=utf-8", PLAIN, JSONBodyTap),
        ("ollama_chat", None, STREAM, NDJSONTap),
        ("ollama_chat", b"text/event-stream", STREAM, None),
        ("embeddings", b"application/json", PLAIN, EmbeddingsTap),
        ("embeddings", b"text/event-stream", STREAM, None),
        ("tgi_generate", b"text/event-stream", STREAM, SSETap),
        ("tgi_generate", b"application/json", PLAIN, JSONBodyTap),
        ("other", b"application/json", PLAIN, None),
        ("other", b"text/event-stream", STREAM, None),
    ],
)
def test_make_tap_chooses_by_endpoint_and_content_type(endpoint: str, content_type: bytes | None, info: RequestInfo, kind: type | None) -> None:
    tap = make_tap(endpoint, framing(endpoint, content_type, info))
    if kind is None:
        assert tap is None
    else:
        assert type(tap) is kind


def test_every_tap_is_fresh() -> None:
    a = make_tap("chat_completions", framing("chat_completions", b"text/event-stream", STREAM))
    b = make_tap("chat_completions", framing("chat_completions", b"text/event-stream", STREAM))
    assert a is not b and a is not None and b is not None and a.summary is not b.summary


def test_big_embeddings_body_keeps_only_head_and_tail() -> None:
    tap = make_tap("embeddings", framing("embeddings", b"application/json", PLAIN))
    assert tap is not None
    head = b'{"object":"list","model":"text-embedding-3-large","data":[{"object":"embedding","index":0,"embedding":['
    vector = b",".join(b"-0.0123456789" for _ in range(200_000))
    tail = b']}],"usage":{"prompt_tokens":1234,"total_tokens":1234}}'
    body = head + vector + tail
    for i in range(0, len(body), 65536):
        tap.feed(body[i : i + 65536])
    assert isinstance(tap, EmbeddingsTap)
    assert len(tap._head) <= 4096 and len(tap._tail) <= 4096
    tap.close()
    assert (tap.summary.model, tap.summary.input_tokens, tap.summary.parse_errors) == ("text-embedding-3-large", 1234, 0)
