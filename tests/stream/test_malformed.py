"""Malformed streams are counted as parse errors and never raise out of a tap."""

from __future__ import annotations

import orjson
import pytest
from hypothesis import assume, given, settings
from hypothesis import strategies as st

from proxy.stream import openai
from proxy.stream.base import RequestInfo, StreamSummary, Tap
from proxy.stream.embeddings import EmbeddingsTap
from proxy.stream.endpoints import ENDPOINTS
from proxy.stream.jsonbody import JSONBodyTap
from proxy.stream.ndjson import NDJSONTap
from proxy.stream.sse import SSETap
from proxy.stream.taps import framing, make_tap
from tests.stream.cases import JSON, NDJSON, SSE, STREAMS, run, split

CONTENT_TYPES = [SSE, NDJSON, JSON, None]

def _distinct_taps() -> list[tuple[str, bytes | None, bool]]:
    """One (endpoint, content type, stream) per distinct kind of tap an endpoint can get."""
    seen: dict[tuple[str, str], tuple[str, bytes | None, bool]] = {}
    for endpoint in ENDPOINTS:
        for content_type in CONTENT_TYPES:
            for stream in (True, False):
                tap = make_tap(endpoint, framing(endpoint, content_type, RequestInfo(stream=stream)))
                if tap is not None:
                    seen.setdefault((endpoint, type(tap).__name__), (endpoint, content_type, stream))
    return list(seen.values())


TAPS = _distinct_taps()


def tap_for(endpoint: str, content_type: bytes | None, stream: bool) -> Tap:
    tap = make_tap(endpoint, framing(endpoint, content_type, RequestInfo(stream=stream)))
    assert tap is not None
    return tap


def _not_json(value: bytes) -> bool:
    try:
        orjson.loads(value)
    except orjson.JSONDecodeError:
        return True
    return False


# Garbage values: no line end inside (each stays one line), not JSON, not the [DONE] marker.
_GARBAGE = st.binary(max_size=64).filter(
    lambda g: b"\n" not in g and b"\r" not in g and not g.startswith(b"[DONE]") and _not_json(g))


def _framed(tap: Tap, garbage: list[bytes]) -> tuple[bytes, int]:
    """``garbage`` framed as the tap's wire format, and the parse errors it must count."""
    if isinstance(tap, SSETap):
        # Every event's data is given to the format, whose JSON parser refuses it: one each.
        return b"".join(b"data: " + g + b"\n\n" for g in garbage), len(garbage)
    if isinstance(tap, NDJSONTap):
        # Blank lines are skipped, every other line is one error.
        return b"".join(g + b"\n" for g in garbage), sum(1 for g in garbage if g.strip())
    body = b"".join(garbage)
    # Pieces that are not JSON alone may be together ("{" and "}"): a body either way.
    assume(_not_json(body))
    if isinstance(tap, EmbeddingsTap):
        # The tap searches a body that opens an object for its fields, and only one that
        # does not even do that is an error.
        assume(not body.lstrip().startswith(b"{"))
    else:
        assert isinstance(tap, JSONBodyTap)
    return body, int(bool(body))  # an empty body was never an answer to parse


@pytest.mark.parametrize("endpoint,content_type,stream", TAPS)
@settings(max_examples=40, deadline=None)
@given(garbage=st.lists(_GARBAGE, max_size=8), data=st.data())
def test_garbage_counts_one_error_per_unreadable_event(endpoint: str, content_type: bytes | None, stream: bool,
                                                       garbage: list[bytes], data: st.DataObject) -> None:
    body, errors = _framed(tap_for(endpoint, content_type, stream), garbage)
    points = data.draw(st.lists(st.integers(0, len(body)), max_size=10))
    summary = run(tap_for(endpoint, content_type, stream), split(body, points))
    assert summary == StreamSummary(parse_errors=errors)


@pytest.mark.parametrize("endpoint,content_type,stream", TAPS)
@settings(max_examples=20, deadline=None)
@given(data=st.data())
def test_mangled_recordings_read_the_same_however_they_are_split(endpoint: str, content_type: bytes | None,
                                                                stream: bool, data: st.DataObject) -> None:
    case = data.draw(st.sampled_from(STREAMS))
    body = bytearray(case.body)
    for index in data.draw(st.lists(st.integers(0, len(body) - 1), max_size=10)):
        body[index] = data.draw(st.integers(0, 255))
    mangled = bytes(body)
    whole = run(tap_for(endpoint, content_type, stream), [mangled])
    points = data.draw(st.lists(st.integers(0, len(mangled)), max_size=10))
    # Whatever the damage did to the summary, it did it the same way under any chunking.
    assert run(tap_for(endpoint, content_type, stream), split(mangled, points)) == whole
    if mangled == case.body and (endpoint, content_type) == (case.endpoint, case.content_type) and stream == case.stream:
        assert whole == case.expected


def test_truncated_json_line_is_one_error_and_the_rest_still_counts() -> None:
    body = (
        b'data: {"model":"m","choices":[{"delta":{"content":"a"}}]}\n\n'
        b'data: {"model":"m","choices":[{"delta":{"cont\n\n'
        b'data: {"choices":[{"delta":{"content":"b"},"finish_reason":"stop"}],"usage":{"prompt_tokens":3,"completion_tokens":2}}\n\n'
        b"data: [DONE]\n\n"
    )
    summary = run(SSETap(openai.on_sse), [body])
    assert (summary.token_events, summary.output_tokens, summary.finish_reason, summary.parse_errors) == (2, 2, "stop", 1)


def test_stream_cut_mid_event_counts_the_truncated_tail() -> None:
    body = b'data: {"choices":[{"delta":{"content":"a"}}]}\n\ndata: {"choices":[{"delta":{"con'
    summary = run(SSETap(openai.on_sse), split(body, [30]))
    assert (summary.token_events, summary.parse_errors) == (1, 1)


def test_unknown_event_types_are_ignored_without_error() -> None:
    body = (
        b'event: message_start\ndata: {"type":"message_start","message":{"model":"c","usage":{"input_tokens":5,"output_tokens":1}}}\n\n'
        b'event: brand_new_event\ndata: {"type":"brand_new_event","whatever":[1,2]}\n\n'
        b'event: content_block_delta\ndata: {"type":"content_block_delta","index":0,"delta":{"type":"text_delta","text":"hi"}}\n\n'
        b'event: content_block_delta\ndata: {"type":"content_block_delta","index":0,"delta":{"type":"future_delta","x":"y"}}\n\n'
    )
    summary = run(tap_for("messages", SSE, True), [body])
    assert (summary.model, summary.input_tokens, summary.token_events, summary.parse_errors) == ("c", 5, 1, 0)


@pytest.mark.parametrize(
    "endpoint,body",
    [
        ("messages", b'event: error\ndata: {"type":"error","error":{"type":"overloaded_error","message":"Overloaded"}}\n\n'),
        ("responses", b'event: error\ndata: {"type":"error","code":"ERR_SOMETHING","message":"Something happened","param":null}\n\n'),
        ("responses", b'data: {"type":"error","code":"ERR_SOMETHING","message":"no event line"}\n\n'),
        ("responses", b'event: response.failed\ndata: {"type":"response.failed","response":{"status":"failed","model":"m","error":{"code":"server_error"}}}\n\n'),
        ("chat_completions", b'data: {"error":{"message":"CUDA out of memory","type":"InternalServerError","code":500}}\n\n'),
        ("llamacpp_completion", b'error: {"code":500,"message":"slot unavailable","type":"server_error"}\n\n'),
        ("tgi_generate", b'data:{"error":"Request failed during generation: Server error: CUDA OOM","error_type":"generation"}\n\n'),
    ],
)
def test_error_events_end_as_error(endpoint: str, body: bytes) -> None:
    summary = run(tap_for(endpoint, SSE, True), [body])
    assert (summary.finish_reason, summary.parse_errors) == ("error", 0)


def test_error_is_not_overwritten_by_a_later_finish() -> None:
    body = b'data: {"error":{"message":"boom"}}\n\ndata: {"choices":[{"delta":{},"finish_reason":"stop"}]}\n\n'
    assert run(tap_for("chat_completions", SSE, True), [body]).finish_reason == "error"


def test_ollama_error_line() -> None:
    summary = run(tap_for("ollama_chat", NDJSON, True), [b'{"error":"model \\"x\\" not found, try pulling it first"}\n'])
    assert (summary.finish_reason, summary.parse_errors) == ("error", 0)


def test_oversized_sse_line_counts_one_error() -> None:
    tap = SSETap(openai.on_sse, limit=256)
    body = b'data: {"choices":[{"delta":{"content":"' + b"x" * 1000 + b'"}}]}\n\ndata: {"choices":[{"delta":{"content":"ok"}}]}\n\n'
    summary = run(tap, split(body, [100, 600]))
    assert (summary.token_events, summary.parse_errors) == (1, 1)


def test_json_body_over_the_bound_is_not_held_or_parsed() -> None:
    tap = JSONBodyTap(openai.on_json, limit=100)
    body = b'{"model":"m","choices":[],"usage":{"prompt_tokens":1,"completion_tokens":2},"pad":"' + b"p" * 200 + b'"}'
    summary = run(tap, split(body, [50, 120]))
    assert (summary.output_tokens, summary.parse_errors) == (None, 1)
    assert tap._parts is None


def test_json_body_that_is_not_json() -> None:
    summary = run(tap_for("chat_completions", JSON, False), [b"<html>502 Bad Gateway</html>"])
    assert summary.parse_errors == 1


def test_embeddings_body_that_is_not_json() -> None:
    summary = run(tap_for("embeddings", JSON, False), [b"Internal Server Error"])
    assert (summary.input_tokens, summary.parse_errors) == (None, 1)


def test_null_choices_and_null_usage_are_not_errors() -> None:
    body = b'data: {"model":"m","choices":null,"usage":null}\n\ndata: {"model":"m","choices":[{"delta":{"content":null,"role":"assistant"}}]}\n\n'
    summary = run(tap_for("chat_completions", SSE, True), [body])
    assert (summary.token_events, summary.parse_errors) == (0, 0)


def test_close_twice_is_harmless() -> None:
    tap = tap_for("chat_completions", SSE, True)
    tap.feed(b'data: {"choices":[{"delta":{"content":"a"}}]}')
    assert tap.close() == 1
    assert tap.close() == 0
    assert tap.summary.token_events == 1
