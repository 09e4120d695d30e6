"""What llama-server reports of its own side, through the proxy: the prefill and decode
phases of its ``timings``, and the prompt tokens it served from its slot cache.

The same prompt twice: llama-server reuses the slot's cached prompt the second time and
says so (``usage.prompt_tokens_details.cached_tokens`` on the OpenAI routes,
``timings.cache_n`` on ``/completion``); the proxy's counter must rise by exactly that,
and its phase histograms by exactly the server's milliseconds.
"""

from __future__ import annotations

import json
import uuid
from typing import Any

import httpx
import pytest

from tests.support.servers import ChildProcess

from .client import stream
from .conftest import MODEL_ALIAS, LlamaServer
from tests.support.metrics import Delta, after_requests, scrape

pytestmark = pytest.mark.llamacpp

MAX_TOKENS = 8
# Greedy and seeded, as the other tests; the prompt cache stays on (the server's default).
SAMPLING: dict[str, Any] = {"temperature": 0, "seed": 42}


def _prompt() -> str:
    # A prompt no earlier test sent, so the first request's cache hit is only the part a
    # chat template shares with other prompts.
    return f"Describe the lighthouse numbered {uuid.uuid4().hex[:8]} in two sentences."


def _check(delta: Delta, endpoint: str, cached: int, timings: dict[str, Any]) -> None:
    labels = {"endpoint": endpoint, "model": MODEL_ALIAS}
    assert delta.get("infermeter_cached_input_tokens_total", **labels) == cached
    for phase, ms in (("prefill", timings["prompt_ms"]), ("decode", timings["predicted_ms"])):
        assert delta.get("infermeter_upstream_phase_seconds_count", **labels, phase=phase) == 1
        observed = delta.get("infermeter_upstream_phase_seconds_sum", **labels, phase=phase)
        assert observed == pytest.approx(ms / 1e3, abs=1e-6, rel=0), phase
    # llama-server reports neither a queue nor a load phase, and no reasoning for this model.
    for phase in ("queue", "load"):
        assert delta.get("infermeter_upstream_phase_seconds_count", **labels, phase=phase) == 0
    assert delta.get("infermeter_reasoning_output_tokens_total", **labels) == 0


def _twice(proxy: ChildProcess, send: Any) -> list[tuple[int, dict[str, Any], Delta]]:
    results = []
    for _ in range(2):
        before = scrape(proxy.url)
        cached, timings = send()
        results.append((cached, timings, after_requests(proxy.url, before, 1) - before))
    return results


def test_chat_stream_cached_tokens_and_phases(llama_server: LlamaServer, proxy: ChildProcess) -> None:
    body = {"model": MODEL_ALIAS, "messages": [{"role": "user", "content": _prompt()}], "max_tokens": MAX_TOKENS,
            "stream": True, "stream_options": {"include_usage": True}, **SAMPLING}

    def send() -> tuple[int, dict[str, Any]]:
        result = stream(proxy.url, "/v1/chat/completions", body)
        assert result.usage is not None and result.timings is not None
        cached = result.usage["prompt_tokens_details"]["cached_tokens"]
        assert cached == result.timings["cache_n"]
        return cached, result.timings

    (first, t1, d1), (second, t2, d2) = _twice(proxy, send)
    assert second > first, "the repeated prompt was not served from the slot's cache"
    _check(d1, "chat_completions", first, t1)
    _check(d2, "chat_completions", second, t2)


def test_chat_json_cached_tokens_and_phases(llama_server: LlamaServer, proxy: ChildProcess) -> None:
    body = {"model": MODEL_ALIAS, "messages": [{"role": "user", "content": _prompt()}], "max_tokens": MAX_TOKENS,
            **SAMPLING}

    def send() -> tuple[int, dict[str, Any]]:
        reply = httpx.post(proxy.url + "/v1/chat/completions", json=body, timeout=60)
        reply.raise_for_status()
        data = reply.json()
        return data["usage"]["prompt_tokens_details"]["cached_tokens"], data["timings"]

    (first, t1, d1), (second, t2, d2) = _twice(proxy, send)
    assert second > first
    _check(d1, "chat_completions", first, t1)
    _check(d2, "chat_completions", second, t2)


def test_native_completion_counts_cache_n(llama_server: LlamaServer, proxy: ChildProcess) -> None:
    """``/completion`` has no usage object: the cached count is ``timings.cache_n``."""
    body = {"prompt": _prompt(), "n_predict": MAX_TOKENS, "stream": True, **SAMPLING}

    def send() -> tuple[int, dict[str, Any]]:
        final: dict[str, Any] = {}
        with httpx.stream("POST", proxy.url + "/completion", json=body, timeout=60) as response:
            response.raise_for_status()
            for line in response.iter_lines():
                if line.startswith("data: ") and '"stop":true' in line:
                    final = json.loads(line[6:])
        timings: dict[str, Any] = final["timings"]
        return timings["cache_n"], timings

    (first, t1, d1), (second, t2, d2) = _twice(proxy, send)
    assert second > first
    _check(d1, "llamacpp_completion", first, t1)
    _check(d2, "llamacpp_completion", second, t2)
