"""Numbers no server could mean are rejected and counted as parse errors, never exported
(issue 18): token counts outside 0..MAX_TOKENS, cached input above the input, phases that
are negative, infinite or longer than MAX_PHASE_SECONDS. Values of another type (null,
a string) stay ignored without an error, as before."""

from __future__ import annotations

from typing import Any

import orjson
import pytest

from proxy.stream.base import StreamSummary
from proxy.stream.fields import MAX_PHASE_SECONDS, MAX_TOKENS
from proxy.stream.taps import JSON, NDJSON, SSE, make_tap, read_headers
from tests.stream.cases import run

HUGE = 2**64 - 1  # the largest integer orjson reads as one


def _json(endpoint: str, body: Any, headers: tuple[tuple[bytes, bytes], ...] = ()) -> StreamSummary:
    tap = make_tap(endpoint, JSON)
    assert tap is not None
    read_headers(endpoint, headers, tap.summary)
    return run(tap, [body if isinstance(body, bytes) else orjson.dumps(body)])


def _stream(endpoint: str, framing: str, events: list[bytes]) -> StreamSummary:
    tap = make_tap(endpoint, framing)
    assert tap is not None
    return run(tap, events)


def _sse(obj: Any, event: bytes = b"") -> bytes:
    return (b"event: " + event + b"\n" if event else b"") + b"data: " + orjson.dumps(obj) + b"\n\n"


def _usage(**usage: Any) -> dict[str, Any]:
    return {"model": "m", "choices": [], "usage": usage}


@pytest.mark.parametrize("bad", [HUGE, MAX_TOKENS + 1, -1, 2.5, 1e308, float(2**64)])
def test_openai_impossible_counts_are_errors_not_counts(bad: Any) -> None:
    summary = _json("chat_completions", _usage(prompt_tokens=bad, completion_tokens=bad))
    assert (summary.input_tokens, summary.output_tokens, summary.parse_errors) == (None, None, 2)


@pytest.mark.parametrize("odd", [None, "9", True, [], {}])
def test_values_of_another_type_are_still_ignored_without_error(odd: Any) -> None:
    summary = _json("chat_completions", _usage(prompt_tokens=odd, completion_tokens=3))
    assert (summary.input_tokens, summary.output_tokens, summary.parse_errors) == (None, 3, 0)


def test_the_bounds_themselves_are_allowed() -> None:
    summary = _json("chat_completions", _usage(prompt_tokens=MAX_TOKENS, completion_tokens=0))
    assert (summary.input_tokens, summary.output_tokens, summary.parse_errors) == (MAX_TOKENS, 0, 0)
    timings = {"prompt_ms": MAX_PHASE_SECONDS * 1e3, "predicted_ms": 0}
    summary = _json("llamacpp_completion", {"stop": True, "timings": timings})
    assert (summary.phases, summary.parse_errors) == ({"prefill": MAX_PHASE_SECONDS, "decode": 0.0}, 0)


def test_cached_above_the_input_is_rejected_in_the_same_usage() -> None:
    usage = _usage(prompt_tokens=10, completion_tokens=2, prompt_tokens_details={"cached_tokens": 11},
                   completion_tokens_details={"reasoning_tokens": HUGE})
    summary = _json("chat_completions", usage)
    assert (summary.input_tokens, summary.cached_input_tokens, summary.reasoning_output_tokens) == (10, None, None)
    assert summary.parse_errors == 2
    equal = _usage(prompt_tokens=10, prompt_tokens_details={"cached_tokens": 10})
    assert _json("chat_completions", equal).cached_input_tokens == 10


def test_cached_seen_first_is_dropped_when_a_smaller_input_follows() -> None:
    # llama-server's OpenAI route: timings (cache_n) on the finish chunk, usage after it.
    finish = {"model": "m", "choices": [{"index": 0, "delta": {}, "finish_reason": "stop"}],
              "timings": {"cache_n": 50, "prompt_ms": 1.0, "predicted_ms": 2.0}}
    summary = _stream("chat_completions", SSE, [_sse(finish), _sse(_usage(prompt_tokens=12, completion_tokens=3))])
    assert (summary.input_tokens, summary.cached_input_tokens, summary.parse_errors) == (12, None, 1)


@pytest.mark.parametrize("prompt_ms,predicted_ms,errors", [
    (1e308, 5.0, 1), (-1.0, 5.0, 1), (1.0, float(HUGE), 1), (1e308, -1e308, 2)])
def test_llamacpp_impossible_timings(prompt_ms: float, predicted_ms: float, errors: int) -> None:
    body = {"content": "x", "stop": True, "stop_type": "eos", "tokens_predicted": 1, "tokens_evaluated": 2,
            "timings": {"prompt_ms": prompt_ms, "predicted_ms": predicted_ms, "cache_n": 1}}
    summary = _json("llamacpp_completion", body)
    valid = {name: ms / 1e3 for name, ms in (("prefill", prompt_ms), ("decode", predicted_ms))
             if 0 <= ms <= MAX_PHASE_SECONDS * 1e3}
    assert (summary.phases or {}, summary.parse_errors) == (valid, errors)
    assert (summary.input_tokens, summary.output_tokens, summary.cached_input_tokens) == (2, 1, 1)


def test_llamacpp_impossible_counts_and_cache() -> None:
    body = {"content": "", "stop": True, "tokens_predicted": 1e308, "tokens_evaluated": 4,
            "timings": {"cache_n": 9}}
    summary = _json("llamacpp_completion", body)
    assert (summary.output_tokens, summary.input_tokens, summary.cached_input_tokens) == (None, 4, None)
    assert summary.parse_errors == 2


def test_ollama_impossible_counts_and_durations() -> None:
    done = {"model": "llama3.2", "done": True, "done_reason": "stop", "prompt_eval_count": HUGE,
            "eval_count": 7, "load_duration": -5, "prompt_eval_duration": 1e308, "eval_duration": 2_000_000_000}
    line = orjson.dumps(done) + b"\n"
    summary = _stream("ollama_chat", NDJSON, [line])
    assert (summary.input_tokens, summary.output_tokens, summary.phases) == (None, 7, {"decode": 2.0})
    assert summary.parse_errors == 3


def test_anthropic_cache_fields_are_held_to_the_bounds() -> None:
    start = {"type": "message_start", "message": {"model": "c", "usage": {
        "input_tokens": 5, "cache_creation_input_tokens": 3, "cache_read_input_tokens": HUGE, "output_tokens": 1}}}
    summary = _stream("messages", SSE, [_sse(start, b"message_start")])
    # The impossible cache read is one error, left out of the sum and of the cached count.
    assert (summary.input_tokens, summary.cached_input_tokens, summary.parse_errors) == (8, None, 1)
    over = {"type": "message_delta", "delta": {"stop_reason": "end_turn"}, "usage": {
        "input_tokens": MAX_TOKENS, "cache_read_input_tokens": 1, "output_tokens": 4}}
    summary = _stream("messages", SSE, [_sse(over, b"message_delta")])
    # Each part is possible, their sum is not.
    assert (summary.input_tokens, summary.output_tokens, summary.parse_errors) == (None, 4, 1)


def test_responses_impossible_usage() -> None:
    body = {"object": "response", "status": "completed", "model": "m", "output": [],
            "usage": {"input_tokens": 3, "output_tokens": -2, "input_tokens_details": {"cached_tokens": 4}}}
    summary = _json("responses", body)
    assert (summary.input_tokens, summary.output_tokens, summary.cached_input_tokens) == (3, None, None)
    assert summary.parse_errors == 2


def test_tgi_impossible_headers_and_details() -> None:
    headers = ((b"x-queue-time", b"99999999999999999999999"), (b"x-prompt-tokens", b"-1"),
               (b"x-generated-tokens", b"4294967296"))
    summary = _json("tgi_generate", {"generated_text": "x", "details": {"generated_tokens": HUGE,
                                                                       "finish_reason": "length"}}, headers)
    assert (summary.input_tokens, summary.output_tokens, summary.phases) == (None, None, None)
    assert summary.parse_errors == 4


def test_embeddings_impossible_prompt_and_load() -> None:
    body = b'{"model":"e","embeddings":[[0.1]],"load_duration":100000000000000000000,"prompt_eval_count":4294967296}'
    summary = _json("embeddings", body)
    assert (summary.input_tokens, summary.phases, summary.parse_errors) == (None, None, 2)
    ok = _json("embeddings", {"model": "e", "embeddings": [[0.1]], "load_duration": 5_000_000, "prompt_eval_count": 4})
    assert (ok.input_tokens, ok.phases, ok.parse_errors) == (4, {"load": 0.005}, 0)


def test_a_server_repeating_an_impossible_usage_counts_each_time() -> None:
    # vLLM's continuous usage repeats usage in every chunk: each bad one is an error, and a
    # later good one still counts.
    chunk = {"model": "m", "choices": [{"index": 0, "delta": {"content": "a"}}], "usage": {"prompt_tokens": -1}}
    last = _usage(prompt_tokens=5, completion_tokens=2)
    summary = _stream("chat_completions", SSE, [_sse(chunk), _sse(chunk), _sse(last)])
    assert (summary.input_tokens, summary.output_tokens, summary.token_events, summary.parse_errors) == (5, 2, 2, 2)



def test_cached_is_not_kept_once_the_input_was_impossible() -> None:
    # Nothing to hold the cached count to: neither the one in the same usage, nor one seen
    # before (a finish chunk's timings) or after (the usage chunk's timings).
    usage = _usage(prompt_tokens=HUGE, completion_tokens=3, prompt_tokens_details={"cached_tokens": 7})
    summary = _stream("chat_completions", SSE, [_sse(usage), b"data: [DONE]\n\n"])
    assert (summary.input_tokens, summary.cached_input_tokens, summary.output_tokens) == (None, None, 3)
    assert summary.parse_errors == 1
    finish = {"model": "m", "choices": [{"index": 0, "delta": {}, "finish_reason": "stop"}], "timings": {"cache_n": 4}}
    last = {**_usage(prompt_tokens=-1, completion_tokens=2), "timings": {"cache_n": 4}}
    summary = _stream("chat_completions", SSE, [_sse(finish), _sse(last)])
    assert (summary.input_tokens, summary.cached_input_tokens, summary.parse_errors) == (None, None, 1)


def test_cached_without_any_input_is_kept_as_before() -> None:
    # llama-server's OpenAI stream when the client asked for no usage: timings alone.
    finish = {"model": "m", "choices": [{"index": 0, "delta": {}, "finish_reason": "stop"}], "timings": {"cache_n": 4}}
    summary = _stream("chat_completions", SSE, [_sse(finish)])
    assert (summary.input_tokens, summary.cached_input_tokens, summary.parse_errors) == (None, 4, 0)
