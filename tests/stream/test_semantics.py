"""What counts as a token event, and how usage and finish reasons are read, per format."""

from __future__ import annotations

import orjson
import pytest

from proxy.stream import anthropic, llamacpp, ollama, openai, responses, tgi
from proxy.stream.base import StreamSummary


def chat(delta: dict[str, object], **extra: object) -> bytes:
    return orjson.dumps({"model": "m", "choices": [{"index": 0, "delta": delta, **extra}]})


@pytest.mark.parametrize(
    "delta,expected",
    [
        ({"role": "assistant"}, 0),
        ({"role": "assistant", "content": ""}, 0),
        ({"content": None}, 0),
        ({}, 0),
        ({"content": "x"}, 1),
        ({"reasoning_content": "think"}, 1),
        ({"reasoning": "think"}, 1),
        ({"refusal": "I can't"}, 1),
        ({"tool_calls": [{"index": 0, "id": "c", "function": {"name": "f", "arguments": ""}}]}, 0),
        ({"tool_calls": [{"index": 0, "function": {"arguments": "{"}}]}, 1),
        ({"function_call": {"arguments": "{}"}}, 1),
    ],
)
def test_openai_chat_token_events(delta: dict[str, object], expected: int) -> None:
    assert openai.on_sse(StreamSummary(), b"message", chat(delta)) == expected


def test_openai_several_choices_in_one_chunk_are_one_event() -> None:
    data = orjson.dumps({"choices": [{"index": 0, "delta": {"content": "a"}}, {"index": 1, "delta": {"content": "b"}}]})
    assert openai.on_sse(StreamSummary(), b"message", data) == 1


def test_openai_completions_text() -> None:
    s = StreamSummary()
    assert openai.on_sse(s, b"message", b'{"choices":[{"text":""}]}') == 0
    assert openai.on_sse(s, b"message", b'{"choices":[{"text":" hi","finish_reason":"content_filter"}]}') == 1
    assert s.finish_reason == "content_filter"


@pytest.mark.parametrize(
    "reason,expected",
    [("stop", "stop"), ("length", "length"), ("tool_calls", "tool_calls"), ("function_call", "tool_calls"),
     ("content_filter", "content_filter"), ("abort", "other")],
)
def test_openai_finish_reasons(reason: str, expected: str) -> None:
    s = StreamSummary()
    openai.on_sse(s, b"message", chat({}, finish_reason=reason))
    assert s.finish_reason == expected


def test_openai_continuous_usage_keeps_the_last() -> None:
    s = StreamSummary()
    for n in (1, 2, 3):
        openai.on_sse(s, b"message", orjson.dumps({"choices": [{"delta": {"content": "x"}}], "usage": {"prompt_tokens": 4, "completion_tokens": n}}))
    assert (s.input_tokens, s.output_tokens) == (4, 3)


def test_responses_incomplete_reasons() -> None:
    for reason, expected in (("max_output_tokens", "length"), ("content_filter", "content_filter")):
        s = StreamSummary()
        event = orjson.dumps({"type": "response.incomplete", "response": {"status": "incomplete", "model": "m", "incomplete_details": {"reason": reason}, "usage": {"input_tokens": 1, "output_tokens": 2}}})
        responses.on_sse(s, b"response.incomplete", event)
        assert (s.finish_reason, s.output_tokens) == (expected, 2)


def test_responses_skips_done_events_unparsed() -> None:
    # Not JSON at all: it would be a parse error if the tap read it.
    assert responses.on_sse(StreamSummary(), b"response.output_text.done", b"not json") == 0
    assert responses.on_sse(StreamSummary(), b"response.refusal.delta", b'{"delta":"no"}') == 1


def test_anthropic_message_delta_input_tokens_and_stop_reasons() -> None:
    s = StreamSummary()
    anthropic.on_sse(s, b"message_start", b'{"type":"message_start","message":{"model":"c","usage":{"input_tokens":10,"output_tokens":1}}}')
    # message_start's output count is provisional: not taken as exact.
    assert (s.input_tokens, s.output_tokens) == (10, None)
    anthropic.on_sse(s, b"message_delta", b'{"type":"message_delta","delta":{"stop_reason":"refusal"},"usage":{"input_tokens":12,"cache_read_input_tokens":3,"output_tokens":7}}')
    assert (s.input_tokens, s.output_tokens, s.finish_reason) == (15, 7, "content_filter")
    for reason, expected in (("end_turn", "stop"), ("stop_sequence", "stop"), ("max_tokens", "length"), ("tool_use", "tool_calls"), ("pause_turn", "other")):
        s = StreamSummary()
        anthropic.on_sse(s, b"message_delta", orjson.dumps({"delta": {"stop_reason": reason}, "usage": {"output_tokens": 1}}))
        assert s.finish_reason == expected


def test_anthropic_without_event_lines_reads_the_type() -> None:
    s = StreamSummary()
    assert anthropic.on_sse(s, b"message", b'{"type":"content_block_delta","delta":{"type":"text_delta","text":"a"}}') == 1
    anthropic.on_sse(s, b"message", b'{"type":"message_delta","delta":{"stop_reason":"end_turn"},"usage":{"output_tokens":3}}')
    assert (s.output_tokens, s.finish_reason) == (3, "stop")


def test_ollama_tool_calls_and_done_reasons() -> None:
    s = StreamSummary()
    line = b'{"model":"q","message":{"role":"assistant","content":"","tool_calls":[{"function":{"name":"f","arguments":{"a":1}}}]},"done":false}'
    assert ollama.on_line(s, line) == 1
    assert ollama.on_line(s, b'{"model":"q","message":{"role":"assistant","content":""},"done":true,"done_reason":"load"}') == 0
    assert s.finish_reason == "other"


def test_tgi_special_and_empty_tokens_are_not_events() -> None:
    s = StreamSummary()
    assert tgi.on_sse(s, b"message", b'{"token":{"id":2,"text":"</s>","special":true}}') == 0
    assert tgi.on_sse(s, b"message", b'{"token":{"id":3,"text":"","special":false}}') == 0
    assert tgi.on_sse(s, b"message", b'{"token":{"id":4,"text":"a","special":false},"generated_text":"a","details":null}') == 1
    assert (s.output_tokens, s.finish_reason) == (None, None)


def test_tgi_generate_as_a_list() -> None:
    s = StreamSummary()
    tgi.on_json(s, [{"generated_text": "x", "details": {"finish_reason": "stop_sequence", "generated_tokens": 2}}])
    assert (s.output_tokens, s.finish_reason) == (2, "stop")


def test_llamacpp_older_stop_flags() -> None:
    for flags, expected in (({"stopped_eos": True}, "stop"), ({"stopped_word": True}, "stop"), ({"stopped_limit": True}, "length"), ({}, "other")):
        s = StreamSummary()
        llamacpp.on_json(s, {"content": "x", "stop": True, "tokens_predicted": 3, "tokens_evaluated": 2, **flags})
        assert (s.finish_reason, s.output_tokens, s.input_tokens) == (expected, 3, 2)


def test_counts_of_the_wrong_type_are_ignored_and_impossible_ones_are_errors() -> None:
    s = StreamSummary()
    openai.on_json(s, {"usage": {"prompt_tokens": "9", "completion_tokens": -1}})
    assert (s.input_tokens, s.output_tokens, s.parse_errors) == (None, None, 1)
