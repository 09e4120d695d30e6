"""What the server says of its own side, end to end: the simulator reports phases and cached
tokens as llama.cpp and Ollama do, the proxy reads them on the way past, and /metrics holds
exactly the values the client received.

Every expectation is computed from the body the client got, the way the tap converts it
(milliseconds / 1e3, nanoseconds / 1e9). A second observation is read as the difference
of two sums, which costs float rounding: values must agree to a nanosecond.
"""

from __future__ import annotations

import time
from collections.abc import Iterator
from contextlib import ExitStack
from typing import Any

import httpx
import ollama
import openai
import orjson
import pytest

from proxy.simulator.app import create_app as create_simulator
from proxy.simulator.config import SimConfig
from tests.formats.conftest import Route, Stage, _serve
from tests.formats.expect import SCHEDULE, SLACK, TBT, TTFT, check_counts
from tests.support.metrics import Delta, measured
from tests.formats.scripted import Step
from tests.support.servers import ThreadServer
from tests.support.sdk import closing

LOAD = 0.3
PHASE = "infermeter_upstream_phase_seconds"


@pytest.fixture(scope="module")
def cold() -> Iterator[Route]:
    """A simulator whose Ollama models take LOAD seconds to load, and unload after 1 s idle."""
    with ExitStack() as stack:
        sim = stack.enter_context(ThreadServer(create_simulator(SimConfig(
            gc_freeze=False, load_time=LOAD, keep_alive=1.0, **SCHEDULE))))
        yield _serve(stack, sim)


def _phases(d: Delta, endpoint: str, model: str) -> dict[str, Any]:
    """(count, sum) per phase the proxy observed, each sum to the nanosecond."""
    labels = {"endpoint": endpoint, "model": model}
    return {phase: (d.get(f"{PHASE}_count", **labels, phase=phase),
                    pytest.approx(d.get(f"{PHASE}_sum", **labels, phase=phase), abs=1e-9, rel=0))
            for phase in ("queue", "load", "prefill", "decode")
            if d.get(f"{PHASE}_count", **labels, phase=phase)}


def _llama_phases(timings: dict[str, Any]) -> dict[str, tuple[float, float]]:
    return {"prefill": (1, timings["prompt_ms"] / 1e3), "decode": (1, timings["predicted_ms"] / 1e3)}


def _sse_data(text: str) -> list[dict[str, Any]]:
    return [orjson.loads(line[6:]) for line in text.splitlines() if line.startswith("data: {")]


def test_llamacpp_completion_timings_and_cache_n(route: Route) -> None:
    body = {"model": "llama-phases", "prompt": "one two three four five six", "n_predict": 6}

    def call() -> dict[str, Any]:
        reply: dict[str, Any] = httpx.post(route.proxied + "/completion", json=body, timeout=10).json()
        return reply

    first, d1 = measured(route.proxied, call)
    second, d2 = measured(route.proxied, call)
    labels = {"endpoint": "llamacpp_completion", "model": "llama-phases"}
    assert first["timings"]["cache_n"] == 0 and second["timings"]["cache_n"] == 6
    for reply, d in ((first, d1), (second, d2)):
        timings = reply["timings"]
        assert _phases(d, **labels) == _llama_phases(timings)
        assert d.get("infermeter_cached_input_tokens_total", **labels) == timings["cache_n"]
        # The simulator's own clock agrees with its schedule: prefill is its TTFT, decode
        # the gaps between its 6 tokens.
        assert TTFT - 0.005 <= timings["prompt_ms"] / 1e3 <= TTFT + SLACK
        assert 5 * TBT - 0.005 <= timings["predicted_ms"] / 1e3 <= 5 * TBT + SLACK


def test_openai_stream_usage_details_and_timings(route: Route) -> None:
    """The SDK sees the cached tokens in usage; the proxy counts exactly those, and the
    phases of the llama.cpp-style ``timings`` in the last chunk."""
    client = closing(openai.OpenAI(base_url=route.proxied + "/v1", api_key="k", max_retries=0, timeout=10))
    messages: list[Any] = [{"role": "user", "content": "tell me about the sky"}]
    labels = {"endpoint": "chat_completions", "model": "chat-cache"}

    def call() -> list[dict[str, Any]]:
        chunks = client.chat.completions.create(model="chat-cache", messages=messages, stream=True,
                                                stream_options={"include_usage": True})
        return [c.model_dump() for c in chunks]

    cold_chunks, d1 = measured(route.proxied, call)
    warm_chunks, d2 = measured(route.proxied, call)
    assert cold_chunks[-1]["usage"]["prompt_tokens_details"]["cached_tokens"] == 0
    assert warm_chunks[-1]["usage"]["prompt_tokens_details"]["cached_tokens"] == 5
    assert d1.get("infermeter_cached_input_tokens_total", **labels) == 0
    assert d2.get("infermeter_cached_input_tokens_total", **labels) == 5
    assert d2.get("infermeter_tokens_total", **labels, type="input") == 5
    # No reasoning in the simulator's answers, and none reported: the counter stays at 0.
    assert d2.get("infermeter_reasoning_output_tokens_total", **labels) == 0

    # The raw stream, for the ``timings`` object the SDK has no field for.
    raw, d3 = measured(route.proxied, lambda: httpx.post(route.proxied + "/v1/chat/completions", timeout=10, json={
        "model": "chat-cache", "messages": messages, "stream": True}).text)
    timings = [c["timings"] for c in _sse_data(raw) if "timings" in c]
    assert len(timings) == 1
    assert _phases(d3, **labels) == _llama_phases(timings[0])
    assert d3.get("infermeter_cached_input_tokens_total", **labels) == timings[0]["cache_n"] == 5


def test_responses_cached_tokens(route: Route) -> None:
    client = closing(openai.OpenAI(base_url=route.proxied + "/v1", api_key="k", max_retries=0, timeout=10))
    labels = {"endpoint": "responses", "model": "resp-cache"}

    def call() -> Any:
        return client.responses.create(model="resp-cache", input="one two three four").usage

    measured(route.proxied, call)
    usage, d = measured(route.proxied, call)
    assert usage is not None and usage.input_tokens_details.cached_tokens == 4
    assert d.get("infermeter_cached_input_tokens_total", **labels) == 4
    assert d.get("infermeter_reasoning_output_tokens_total", **labels) == usage.output_tokens_details.reasoning_tokens


def test_ollama_cold_load_then_warm(cold: Route) -> None:
    client = closing(ollama.Client(host=cold.proxied, timeout=10))
    labels = {"endpoint": "ollama_chat", "model": "cold-model"}
    messages = [{"role": "user", "content": "why is the sky blue"}]

    def call() -> dict[str, Any]:
        parts = [p.model_dump() for p in client.chat(model="cold-model", messages=messages, stream=True)]
        return parts[-1]

    first, d1 = measured(cold.proxied, call)
    second, d2 = measured(cold.proxied, call)
    # The cold request waited for the load, and the server said so; the warm one did not.
    assert LOAD * 1e9 <= first["load_duration"] <= (LOAD + SLACK) * 1e9
    assert second["load_duration"] == 0
    for final, d in ((first, d1), (second, d2)):
        assert _phases(d, **labels) == {
            "load": (1, final["load_duration"] / 1e9),
            "prefill": (1, final["prompt_eval_duration"] / 1e9),
            "decode": (1, final["eval_duration"] / 1e9),
        }
    # The load really took that long: the client's first token came after it.
    ttft = d1.get("infermeter_time_to_first_token_seconds_sum", **labels)
    assert LOAD + TTFT - 0.005 <= ttft <= LOAD + TTFT + SLACK
    assert TTFT - 0.005 <= d2.get("infermeter_time_to_first_token_seconds_sum", **labels) <= TTFT + SLACK
    # Prefill stays the schedule's TTFT: the load is not counted twice.
    assert TTFT - 0.005 <= first["prompt_eval_duration"] / 1e9 <= TTFT + SLACK


def test_ollama_unloads_after_keep_alive(cold: Route) -> None:
    client = closing(ollama.Client(host=cold.proxied, timeout=10))
    reply = client.generate(model="idle-model", prompt="one", options={"num_predict": 1})
    assert reply.load_duration is not None and reply.load_duration >= LOAD * 1e9
    again = client.generate(model="idle-model", prompt="one", options={"num_predict": 1})
    assert again.load_duration == 0
    time.sleep(1.2)  # past the 1 s keep-alive: the model unloaded
    late, d = measured(cold.proxied, lambda: client.generate(model="idle-model", prompt="one",
                                                             options={"num_predict": 1}))
    assert late.load_duration is not None and late.load_duration >= LOAD * 1e9
    labels = {"endpoint": "ollama_generate", "model": "idle-model"}
    assert d.get(f"{PHASE}_sum", **labels, phase="load") == pytest.approx(late.load_duration / 1e9, abs=1e-9, rel=0)


def test_tgi_timing_headers(scripted: Stage) -> None:
    """TGI's /generate answers with its queue time and counts in headers (router
    generate_internal, whole milliseconds); the body without ``details`` has neither."""
    headers = ((b"x-compute-type", b"gpu+optimized"), (b"x-total-time", b"473"), (b"x-validation-time", b"1"),
               (b"x-queue-time", b"312"), (b"x-inference-time", b"160"), (b"x-time-per-token", b"20"),
               (b"x-prompt-tokens", b"6"), (b"x-generated-tokens", b"8"))
    steps: list[Step] = [(TTFT, b'{"generated_text":" Deep learning is a subset of machine learning"}')]
    route = scripted.play(steps, b"application/json", headers)
    reply, d = measured(route.proxied, lambda: httpx.post(route.proxied + "/generate", timeout=10, json={
        "inputs": "What is deep learning?", "model": "tgi-headers"}))
    # Every header reached the client as the server sent it.
    assert all(reply.headers[name.decode()] == value.decode() for name, value in headers)
    check_counts(d, "tgi_generate", "tgi-headers", inputs=6, outputs=8, reason=None, stream=False)
    assert _phases(d, "tgi_generate", "tgi-headers") == {"queue": (1, 312 / 1e3)}
