"""Edge cases of what servers report of their own side: values of another type are ignored,
impossible numbers are parse errors (tests/stream/test_bounds.py), and when two fields say
the same thing the documented one wins."""

from __future__ import annotations

import orjson

from proxy.stream.base import StreamSummary
from proxy.stream.taps import JSON, make_tap, read_headers


def _body(endpoint: str, body: object, headers: tuple[tuple[bytes, bytes], ...] = ()) -> StreamSummary:
    tap = make_tap(endpoint, JSON)
    assert tap is not None
    read_headers(endpoint, headers, tap.summary)
    tap.feed(orjson.dumps(body))
    tap.close()
    return tap.summary


def test_usage_cached_tokens_win_over_cache_n_in_either_order() -> None:
    usage = {"prompt_tokens": 10, "completion_tokens": 2, "prompt_tokens_details": {"cached_tokens": 7}}
    body = {"model": "m", "usage": usage, "timings": {"cache_n": 3, "prompt_ms": 1.5, "predicted_ms": 2}}
    assert _body("chat_completions", body).cached_input_tokens == 7
    no_details = {"prompt_tokens": 10, "completion_tokens": 2}
    assert _body("chat_completions", {**body, "usage": no_details}).cached_input_tokens == 3


def test_phases_keep_only_finite_non_negative_numbers() -> None:
    body = {"model": "m", "done": True, "done_reason": "stop", "load_duration": -5, "prompt_eval_duration": "12",
            "eval_duration": 2_000_000_000, "prompt_eval_count": 3, "eval_count": 4}
    summary = _body("ollama_chat", body)
    assert (summary.phases, summary.parse_errors) == ({"decode": 2.0}, 1), "-5 is an error, a string is not a number"
    summary = _body("ollama_chat", {**body, "eval_duration": True})
    assert (summary.phases, summary.parse_errors) == (None, 1)
    timings = {"prompt_ms": 1e308, "predicted_ms": None}
    summary = _body("llamacpp_completion", {"stop": True, "timings": timings})
    assert (summary.phases, summary.parse_errors) == (None, 1)


def test_tgi_details_win_over_headers_and_bad_headers_are_ignored() -> None:
    headers = ((b"X-Queue-Time", b"soon"), (b"x-prompt-tokens", b"-1"), (b"x-generated-tokens", b"9"))
    summary = _body("tgi_generate", {"generated_text": "x", "details": {"generated_tokens": 8, "finish_reason": "length",
                                                                       "prefill": [{"id": 1}] * 5}}, headers)
    assert (summary.input_tokens, summary.output_tokens, summary.phases) == (5, 8, None)
    assert summary.parse_errors == 1, "a negative count is an error, a time of 'soon' is not a number"
    # Other endpoints do not read headers at all.
    assert _body("chat_completions", {"model": "m"}, ((b"x-queue-time", b"5"),)).phases is None
