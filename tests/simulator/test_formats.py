"""Wire formats as bytes: what the SDKs do not check (framing, caps, errors, routing)."""

from __future__ import annotations

import json
from collections.abc import Iterator
from typing import Any

import httpx
import pytest

from tests.support.servers import ThreadServer


def sse_data(text: str) -> list[Any]:
    """The JSON of each ``data:`` line (with or without a space), ``[DONE]`` kept as text."""
    out: list[Any] = []
    for line in text.split("\n"):
        if line.startswith("data:"):
            payload = line[5:].lstrip(" ")
            out.append(payload if payload == "[DONE]" else json.loads(payload))
    return out


# One client for the module: building one per request costs more than the request.
_client = httpx.Client(timeout=10)


@pytest.fixture(autouse=True, scope="module")
def _close_client() -> Iterator[None]:
    yield
    _client.close()


def post(sim: ThreadServer, path: str, body: dict[str, Any], **headers: str) -> httpx.Response:
    return _client.post(sim.url + path, json=body, headers=headers)


def test_chat_include_usage_only_when_asked(fast: ThreadServer) -> None:
    base = {"messages": [{"role": "user", "content": "a b"}], "stream": True}
    plain = sse_data(post(fast, "/v1/chat/completions", base).text)
    assert plain[-1] == "[DONE]"
    assert all("usage" not in e for e in plain[:-1])
    asked = sse_data(post(fast, "/v1/chat/completions", {**base, "stream_options": {"include_usage": True}}).text)
    assert all(e["usage"] is None for e in asked[:-2])
    assert asked[-2]["choices"] == [] and asked[-2]["usage"]["completion_tokens"] == 8
    declined = sse_data(post(fast, "/v1/chat/completions", {**base, "stream_options": {"include_usage": False}}).text)
    assert len(declined) == len(plain)


def test_chat_stream_shape(fast: ThreadServer) -> None:
    events = sse_data(post(fast, "/v1/chat/completions", {"messages": [], "stream": True, "max_tokens": 2}).text)
    assert events[0]["choices"][0]["delta"] == {"role": "assistant", "content": ""}
    assert [e["choices"][0]["delta"].get("content") for e in events[1:3]] != [None, None]
    assert events[3]["choices"][0] == {"index": 0, "delta": {}, "logprobs": None, "finish_reason": "length"}
    assert events[4] == "[DONE]" and len(events) == 5


@pytest.mark.parametrize(("path", "body"), [
    ("/v1/chat/completions", {"max_completion_tokens": 3}),
    ("/v1/chat/completions", {"max_tokens": 3, "max_completion_tokens": 5}),
    ("/v1/completions", {"max_tokens": 3}),
    ("/v1/responses", {"max_output_tokens": 3}),
    ("/v1/messages", {"max_tokens": 3}),
    ("/api/generate", {"options": {"num_predict": 3}, "stream": False}),
    ("/generate", {"inputs": "x", "parameters": {"max_new_tokens": 3, "details": True}}),
    ("/completion", {"n_predict": 3}),
])
def test_caps_are_honoured(fast: ThreadServer, path: str, body: dict[str, Any]) -> None:
    reply = post(fast, path, body).json()
    text = (reply.get("choices", [{}])[0].get("message", {}).get("content")
            or reply.get("choices", [{}])[0].get("text")
            or reply.get("output_text") or reply.get("response") or reply.get("generated_text")
            or reply.get("content"))
    if path == "/v1/responses":
        text = reply["output"][0]["content"][0]["text"]
    if path == "/v1/messages":
        text = reply["content"][0]["text"]
    assert isinstance(text, str) and len(text.split()) == 3


def test_cap_above_natural_length_is_a_natural_stop(fast: ThreadServer) -> None:
    reply = post(fast, "/v1/chat/completions", {"messages": [], "max_tokens": 100}).json()
    assert reply["choices"][0]["finish_reason"] == "stop"
    assert reply["usage"]["completion_tokens"] == 8
    unlimited = post(fast, "/completion", {"prompt": "x", "n_predict": -1}).json()
    assert unlimited["tokens_predicted"] == 8 and unlimited["stop_type"] == "eos"


def test_tgi_stream_has_no_space_and_details_on_last(fast: ThreadServer) -> None:
    raw = post(fast, "/generate_stream", {"inputs": "a b c", "parameters": {"details": True}}).text
    assert raw.startswith('data:{"index":1,')
    events = sse_data(raw)
    assert len(events) == 8
    assert [e["index"] for e in events] == list(range(1, 9))
    assert all(e["generated_text"] is None and e["details"] is None for e in events[:-1])
    assert events[-1]["generated_text"] == "".join(e["token"]["text"] for e in events)
    assert events[-1]["details"] == {"finish_reason": "eos_token", "generated_tokens": 8, "seed": None,
                                     "input_length": 3}
    plain = sse_data(post(fast, "/generate_stream", {"inputs": "a"}).text)
    assert plain[-1]["details"] is None and plain[-1]["generated_text"]


def test_tgi_refuses_zero_new_tokens(fast: ThreadServer) -> None:
    reply = post(fast, "/generate", {"inputs": "x", "parameters": {"max_new_tokens": 0}})
    assert reply.status_code == 422
    assert reply.json()["error_type"] == "validation"


def test_llamacpp_stream(fast: ThreadServer) -> None:
    events = sse_data(post(fast, "/completion", {"prompt": "a b", "stream": True, "n_predict": 4}).text)
    assert [e["stop"] for e in events] == [False] * 4 + [True]
    assert [e["tokens_predicted"] for e in events[:4]] == [1, 2, 3, 4]
    final = events[-1]
    assert (final["content"], final["tokens_predicted"], final["tokens_evaluated"]) == ("", 4, 2)
    assert final["stop_type"] == "limit" and final["timings"]["predicted_n"] == 4


def test_ollama_streams_unless_told_not_to(fast: ThreadServer) -> None:
    reply = post(fast, "/api/chat", {"model": "m", "messages": [{"role": "user", "content": "x"}]})
    assert reply.headers["content-type"] == "application/x-ndjson"
    lines = [json.loads(line) for line in reply.text.splitlines()]
    assert [line["done"] for line in lines] == [False] * 8 + [True]
    assert lines[-1]["eval_count"] == 8 and lines[-1]["done_reason"] == "stop"


def test_model_defaults_to_config_else_request(simulator: Any) -> None:
    sim = simulator(ttft=0, tbt=0, output_tokens=2, model="served-name")
    assert post(sim, "/v1/chat/completions", {"messages": []}).json()["model"] == "served-name"
    assert post(sim, "/v1/chat/completions", {"messages": [], "model": "asked"}).json()["model"] == "asked"
    assert post(sim, "/completion", {"prompt": ""}).json()["model"] == "served-name"


def test_text_is_deterministic_per_seed(simulator: Any) -> None:
    first = simulator(ttft=0, tbt=0, output_tokens=20, seed=7)
    same = simulator(ttft=0, tbt=0, output_tokens=20, seed=7)
    other = simulator(ttft=0, tbt=0, output_tokens=20, seed=8)

    def text(sim: ThreadServer) -> str:
        return str(post(sim, "/v1/completions", {"prompt": "x"}).json()["choices"][0]["text"])
    assert text(first) == text(same) == text(first)
    assert text(first) != text(other)
    assert len(text(first).split()) == 20


def test_header_overrides(fast: ThreadServer) -> None:
    reply = post(fast, "/v1/completions", {"prompt": "x"}, **{"x-sim-output-tokens": "3"}).json()
    assert reply["usage"]["completion_tokens"] == 3 and reply["choices"][0]["finish_reason"] == "stop"
    for name, value in [("x-sim-ttft", "-1"), ("x-sim-tbt", "soon"), ("x-sim-output-tokens", "1.5"),
                        ("x-sim-error", "200")]:
        bad = post(fast, "/v1/completions", {"prompt": "x"}, **{name: value})
        assert bad.status_code == 400
        assert name in bad.json()["error"]["message"]


@pytest.mark.parametrize(("path", "status", "check"), [
    ("/v1/chat/completions", 429, lambda b: b["error"]["type"] == "rate_limit_error" and b["error"]["code"] == 429),
    ("/v1/messages", 500, lambda b: b["type"] == "error" and b["error"]["type"] == "api_error"),
    ("/api/generate", 503, lambda b: isinstance(b["error"], str)),
    ("/generate_stream", 503, lambda b: b["error_type"] == "overloaded"),
    ("/completion", 500, lambda b: b["error"]["code"] == 500),
])
def test_error_override_shapes(fast: ThreadServer, path: str, status: int, check: Any) -> None:
    reply = post(fast, path, {"inputs": "x"}, **{"x-sim-error": str(status)})
    assert reply.status_code == status
    assert check(reply.json())
    assert ("retry-after" in reply.headers) == (status in (429, 503))


def test_error_rate_is_seeded(simulator: Any) -> None:
    def outcomes(sim: ThreadServer) -> list[int]:
        return [post(sim, "/v1/completions", {"prompt": "x"}).status_code for _ in range(40)]
    a = outcomes(simulator(ttft=0, tbt=0, output_tokens=1, error_rate=0.5, seed=3))
    b = outcomes(simulator(ttft=0, tbt=0, output_tokens=1, error_rate=0.5, seed=3))
    assert a == b
    assert set(a) == {200, 500}
    assert all(s == 500 for s in outcomes(simulator(ttft=0, tbt=0, output_tokens=1, error_rate=1.0)))


def test_bad_requests(fast: ThreadServer) -> None:
    malformed = _client.post(fast.url + "/v1/chat/completions", content=b"{not json")
    assert malformed.status_code == 400 and "JSON" in malformed.json()["error"]["message"]
    assert _client.post(fast.url + "/v1/chat/completions", content=b"[1]").status_code == 400
    missing = _client.get(fast.url + "/v1/nothing-here")
    assert missing.status_code == 404 and missing.json()["error"]["code"] == 404
    assert _client.get(fast.url + "/v1/chat/completions").status_code == 405
    assert _client.post(fast.url + "/health").status_code == 405


def test_catalog_pages(fast: ThreadServer) -> None:
    assert _client.get(fast.url + "/health").json() == {"status": "ok"}
    assert _client.get(fast.url + "/v1/models").json()["data"][0]["id"] == "infermeter-sim"
    assert _client.get(fast.url + "/api/tags").json()["models"][0]["name"] == "infermeter-sim"
    assert "version" in _client.get(fast.url + "/api/version").json()


def test_stats_count_requests(simulator: Any) -> None:
    fast = simulator(ttft=0.01, tbt=0.001, output_tokens=8)
    post(fast, "/v1/completions", {"prompt": "x"})
    post(fast, "/v1/completions", {"prompt": "x"}, **{"x-sim-error": "500"})
    _client.get(fast.url + "/health")
    stats = _client.get(fast.url + "/sim/stats").json()
    assert stats == {"requests": 2, "active": 0, "queued": 0, "completed": 1, "cancelled": 0, "errors": 1,
                     "max_active": 1}
    assert fast.app.stats.as_dict() == stats
