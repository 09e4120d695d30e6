from __future__ import annotations

import pytest

from proxy.stream.base import RequestInfo
from proxy.stream.request import inspect_request


@pytest.mark.parametrize(
    "endpoint,body,path,expected",
    [
        ("chat_completions", b'{"model":"gpt-4o","stream":true,"stream_options":{"include_usage":true}}', None, RequestInfo("gpt-4o", True, True)),
        ("chat_completions", b'{"model":"gpt-4o","messages":[]}', None, RequestInfo("gpt-4o", False, False)),
        ("completions", b'{"model":"m","stream":"yes"}', None, RequestInfo("m", False, False)),
        ("responses", b'{"model":"gpt-4.1","stream":true}', None, RequestInfo("gpt-4.1", True, False)),
        ("messages", b'{"model":"claude-sonnet-4-5","max_tokens":10,"stream":true}', None, RequestInfo("claude-sonnet-4-5", True, False, max_tokens=10)),
        ("ollama_chat", b'{"model":"llama3.2","messages":[]}', None, RequestInfo("llama3.2", True, False)),
        ("ollama_generate", b'{"model":"llama3.2","stream":false}', None, RequestInfo("llama3.2", False, False)),
        ("ollama_generate", b'{"model":"llama3.2","stream":null}', None, RequestInfo("llama3.2", True, False)),
        ("tgi_generate", b'{"inputs":"hi","parameters":{"details":true}}', "/generate_stream", RequestInfo(None, True, False)),
        ("tgi_generate", b'{"inputs":"hi"}', "/generate", RequestInfo(None, False, False)),
        ("llamacpp_completion", b'{"prompt":"hi","stream":true}', None, RequestInfo(None, True, False)),
        ("embeddings", b'{"model":"text-embedding-3-small","input":"x","stream":true}', None, RequestInfo("text-embedding-3-small", False, False)),
        ("chat_completions", b'{"model":"m","stream_options":{"include_usage":"true"},"tools":[{"model":"nested"}]}', None, RequestInfo("m", False, False)),
    ],
)
def test_inspect_request(endpoint: str, body: bytes, path: str | None, expected: RequestInfo) -> None:
    assert inspect_request(endpoint, body, path) == expected


@pytest.mark.parametrize("body", [b"", b"not json", b"[1,2]", b'{"model": 5}', b"\xff\xfe", b'{"model":"m"'])
def test_malformed_bodies_give_defaults(body: bytes) -> None:
    info = inspect_request("chat_completions", body)
    assert info.stream is False and info.include_usage is False
    assert info.model is None


def test_other_endpoint_is_not_parsed() -> None:
    assert inspect_request("other", b'{"model":"m","stream":true}') == RequestInfo()


def test_sampling_parameters_are_read_when_numbers() -> None:
    info = inspect_request("chat_completions", b'{"model":"m","max_tokens":64,"temperature":0.2,"top_p":0.9}')
    assert (info.max_tokens, info.temperature, info.top_p) == (64, 0.2, 0.9)
