"""Each check counts a bad answer as the failure it is and a good one as a pass, on every
wire format where the feature exists, whatever the chunking of the stream."""

from __future__ import annotations

from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from proxy.quality.checks import (
    EMPTY,
    FAIL,
    JSON,
    PASS,
    REPETITION,
    SCHEMA_LIMIT,
    SKIPPED,
    TOOL_ARGUMENTS,
    Result,
    failed,
)
from proxy.quality.content import KEEP_LIMIT
from tests.quality.harness import WIRES, Wire, run, split
from tests.quality.streams import Answer, ToolCall, pieces

SCHEMA = {
    "type": "object",
    "properties": {"city": {"type": "string"}, "population": {"type": "integer", "minimum": 0}},
    "required": ["city", "population"],
    "additionalProperties": False,
}
WEATHER = {"type": "object", "properties": {"location": {"type": "string"}, "unit": {"enum": ["c", "f"]}},
           "required": ["location"]}

NORMAL = ("Paris is the capital of France. It sits on the Seine, and about two million people live "
          "in the city itself, more than twelve million in its metropolitan area. ")


def json_request(endpoint: str) -> dict[str, Any]:
    """A request asking for JSON matching SCHEMA, in the endpoint's own spelling."""
    if endpoint == "chat_completions":
        return {"response_format": {"type": "json_schema", "json_schema": {"name": "city", "schema": SCHEMA}}}
    if endpoint == "responses":
        return {"text": {"format": {"type": "json_schema", "name": "city", "schema": SCHEMA}}}
    if endpoint == "messages":
        return {"output_format": {"type": "json_schema", "schema": SCHEMA}}
    return {"format": SCHEMA}


def tools_request(endpoint: str) -> dict[str, Any]:
    if endpoint == "messages":
        return {"tools": [{"name": "get_weather", "input_schema": WEATHER}]}
    if endpoint == "responses":
        return {"tools": [{"type": "function", "name": "get_weather", "parameters": WEATHER}]}
    return {"tools": [{"type": "function", "function": {"name": "get_weather", "parameters": WEATHER}}]}


def results_for(wire: Wire, request: dict[str, Any], answer: Answer) -> list[Result]:
    return run(wire, request, [wire.build(answer)])


def result(results: list[Result], check: str) -> list[str]:
    return [r for c, r in results if c == check]


def text(value: str) -> Answer:
    return Answer(text=pieces(value))


@pytest.mark.parametrize("wire", WIRES, ids=lambda w: w.name)
def test_json_answers(wire: Wire) -> None:
    request = json_request(wire.endpoint)
    assert result(results_for(wire, request, text('{"city": "Paris", "population": 2102650}')), JSON) == [PASS]
    # Cut short (max_tokens mid-object): not JSON at all.
    assert result(results_for(wire, request, text('{"city": "Paris", "popul')), JSON) == [FAIL]
    # JSON, but not what the schema asked for.
    assert result(results_for(wire, request, text('{"city": "Paris", "population": "many"}')), JSON) == [FAIL]
    assert result(results_for(wire, request, text('{"city": "Paris"}')), JSON) == [FAIL]
    # Fenced: a client's json.loads fails on it, so the JSON mode failed.
    assert result(results_for(wire, request, text('```json\n{"city": "Paris", "population": 1}\n```')), JSON) == [FAIL]


@pytest.mark.parametrize("wire", WIRES, ids=lambda w: w.name)
def test_no_json_check_unless_asked(wire: Wire) -> None:
    results = results_for(wire, {}, text("not json at all"))
    assert result(results, JSON) == []
    assert result(results, EMPTY) == [PASS]


@pytest.mark.parametrize("wire", WIRES, ids=lambda w: w.name)
def test_tool_call_arguments(wire: Wire) -> None:
    request = tools_request(wire.endpoint)
    good = ToolCall("get_weather", ('{"loca', 'tion": "Paris', ', France"}'))
    assert result(results_for(wire, request, Answer(calls=(good,))), TOOL_ARGUMENTS) == [PASS]
    violates = ToolCall("get_weather", ('{"unit": ', '"kelvin"}'))
    assert result(results_for(wire, request, Answer(calls=(violates,))), TOOL_ARGUMENTS) == [FAIL]
    unknown = ToolCall("launch_rockets", ('{"location": "Paris"}',))
    assert result(results_for(wire, request, Answer(calls=(unknown,))), TOOL_ARGUMENTS) == [FAIL]
    # One result per call: the good one passes beside the bad one.
    both = results_for(wire, request, Answer(calls=(good, violates)))
    assert sorted(result(both, TOOL_ARGUMENTS)) == [FAIL, PASS]
    assert failed(both) == [TOOL_ARGUMENTS]


@pytest.mark.parametrize("wire", [w for w in WIRES if w.text_arguments], ids=lambda w: w.name)
def test_broken_tool_call_arguments(wire: Wire) -> None:
    request = tools_request(wire.endpoint)
    broken = ToolCall("get_weather", ('{"location": "Par',))
    assert result(results_for(wire, request, Answer(calls=(broken,))), TOOL_ARGUMENTS) == [FAIL]
    not_object = ToolCall("get_weather", ('["Paris"]',))
    assert result(results_for(wire, request, Answer(calls=(not_object,))), TOOL_ARGUMENTS) == [FAIL]


@pytest.mark.parametrize("wire", WIRES, ids=lambda w: w.name)
def test_empty_answers(wire: Wire) -> None:
    assert result(results_for(wire, {}, Answer()), EMPTY) == [FAIL]
    assert result(results_for(wire, {}, text(NORMAL)), EMPTY) == [PASS]
    # A tool call is an answer.
    call = Answer(calls=(ToolCall("get_weather", ('{"location": "Paris"}',)),))
    assert result(results_for(wire, tools_request(wire.endpoint), call), EMPTY) == [PASS]


@pytest.mark.parametrize("wire", [w for w in WIRES if w.name in ("openai_chat_sse", "responses_sse")], ids=lambda w: w.name)
def test_reasoning_alone_is_an_empty_answer(wire: Wire) -> None:
    assert result(results_for(wire, {}, Answer(reasoning=pieces(NORMAL))), EMPTY) == [FAIL]


@pytest.mark.parametrize("wire", WIRES, ids=lambda w: w.name)
def test_repetition(wire: Wire) -> None:
    loop = "I am a helpful assistant. " * 60
    assert result(results_for(wire, {}, text(NORMAL + loop)), REPETITION) == [FAIL]
    assert result(results_for(wire, {}, text(NORMAL * 2)), REPETITION) == [PASS]


def test_json_too_large_to_keep_is_skipped_not_guessed() -> None:
    wire = WIRES[0]
    big = '{"city": "' + "x" * (KEEP_LIMIT + 10) + '", "population": 1}'
    assert result(results_for(wire, json_request(wire.endpoint), text(big)), JSON) == [SKIPPED]


def test_a_document_too_long_to_validate_is_parsed_but_its_schema_skipped() -> None:
    wire = WIRES[0]
    long_ok = '{"city": "' + "x" * (SCHEMA_LIMIT + 10) + '", "population": 1}'
    assert result(results_for(wire, json_request(wire.endpoint), text(long_ok)), JSON) == [SKIPPED]
    assert result(results_for(wire, json_request(wire.endpoint), text(long_ok[:-1])), JSON) == [FAIL]


def test_unusable_schema_is_skipped() -> None:
    wire = WIRES[0]
    request = {"response_format": {"type": "json_schema", "json_schema": {"schema": {"type": "no-such-type"}}}}
    assert result(results_for(wire, request, text('{"a": 1}')), JSON) == [SKIPPED]


def test_checks_off_count_nothing() -> None:
    wire = WIRES[0]
    assert run(wire, json_request(wire.endpoint), [wire.build(Answer())], enabled=frozenset({REPETITION})) == [
        (REPETITION, PASS)]


# Every kind of answer above, good and bad, for the re-chunking property.
def _cases(wire: Wire) -> list[tuple[dict[str, Any], Answer]]:
    cases = [
        (json_request(wire.endpoint), text('{"city": "Paris", "population": 2102650}')),
        (json_request(wire.endpoint), text('{"city": "Paris", "popul')),
        (json_request(wire.endpoint), text('{"city": "Paris", "population": "many"}')),
        (tools_request(wire.endpoint), Answer(calls=(ToolCall("get_weather", ('{"location":', ' "Paris"}')),))),
        (tools_request(wire.endpoint), Answer(calls=(ToolCall("get_weather", ('{"unit": "k"}',)),))),
        ({}, Answer()),
        ({}, text(NORMAL + "All work and no play makes Jack a dull boy. " * 40)),
        ({}, text(NORMAL * 3)),
    ]
    if wire.text_arguments:
        cases.append((tools_request(wire.endpoint), Answer(calls=(ToolCall("get_weather", ('{"loc',)),))))
    return cases


@pytest.mark.parametrize("wire", WIRES, ids=lambda w: w.name)
@settings(max_examples=40, deadline=None)
@given(data=st.data())
def test_any_rechunking_gives_the_same_results(wire: Wire, data: st.DataObject) -> None:
    request, answer = data.draw(st.sampled_from(_cases(wire)))
    body = wire.build(answer)
    expected = run(wire, request, [body])
    points = data.draw(st.lists(st.integers(0, len(body)), max_size=80))
    assert run(wire, request, split(body, points)) == expected
    # And byte by byte, the worst case for every framer.
    if data.draw(st.booleans()):
        assert run(wire, request, [body[i : i + 1] for i in range(len(body))]) == expected
