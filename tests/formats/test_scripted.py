"""Reasoning and tool-call streams the simulator cannot produce, replayed by a scripted
upstream and read by the real SDKs, directly and through the proxy."""

from __future__ import annotations

from typing import Any

import anthropic
import openai
from anthropic.types import MessageParam
from openai.types.chat import ChatCompletionMessageParam, ChatCompletionToolParam

from tests.formats import streams
from tests.formats.compare import through
from tests.formats.conftest import Route, Stage
from tests.formats.expect import TBT, TTFT, check_stream
from tests.formats.scripted import paced
from tests.support.sdk import closing

QUESTION = "Which is greater, 9.11 or 9.8?"
MESSAGES: list[ChatCompletionMessageParam] = [{"role": "user", "content": QUESTION}]
ASK: MessageParam = {"role": "user", "content": QUESTION}
TOOLS: list[ChatCompletionToolParam] = [{"type": "function", "function": {"name": "get_weather", "parameters": {
    "type": "object", "properties": {"location": {"type": "string"}}, "required": ["location"]}}}]


def _route(scripted: Stage, stream: streams.Stream) -> Route:
    return scripted.play(paced(stream.head, stream.body, stream.tail, TTFT, TBT))


def _openai(base: str) -> openai.OpenAI:
    return closing(openai.OpenAI(base_url=base + "/v1", api_key="sk-test", max_retries=0, timeout=10))


def test_chat_reasoning_deltas_are_tokens(scripted: Stage) -> None:
    route = _route(scripted, streams.CHAT_REASONING)

    def call(base: str) -> list[dict[str, Any]]:
        chunks = _openai(base).chat.completions.create(model="r1", messages=MESSAGES, stream=True,
                                                       stream_options={"include_usage": True})
        return [c.model_dump() for c in chunks]

    chunks, d = through(route, call)
    reasoning = "".join(c["choices"][0]["delta"].get("reasoning_content") or "" for c in chunks if c["choices"])
    assert reasoning == "Okay, 9.11 vs 9.8"
    # The label is the response's model, not the request's "r1"; the counts are the
    # server's usage (31 with reasoning), not the 8 token events.
    check_stream(d, "chat_completions", "deepseek-r1", inputs=17, outputs=31, reason="stop")
    assert d.get("infermeter_reasoning_output_tokens_total", endpoint="chat_completions", model="deepseek-r1") == 23


def test_chat_tool_call_deltas_are_tokens(scripted: Stage) -> None:
    route = _route(scripted, streams.CHAT_TOOL_CALL)

    def call(base: str) -> dict[str, Any]:
        with _openai(base).chat.completions.stream(model="m", messages=MESSAGES, tools=TOOLS) as s:
            for _ in s:
                pass
            return s.get_final_completion().model_dump()

    final, d = through(route, call)
    message = final["choices"][0]["message"]
    assert message["tool_calls"][0]["function"] == {"name": "get_weather", "arguments": streams.TOOL_ARGUMENTS,
                                                     "parsed_arguments": None}
    assert final["choices"][0]["finish_reason"] == "tool_calls"
    check_stream(d, "chat_completions", "deepseek-r1", inputs=None, outputs=8, reason="tool_calls", estimated=True)


def test_responses_reasoning_and_function_call(scripted: Stage) -> None:
    route = _route(scripted, streams.RESPONSES_TOOL_CALL)

    def call(base: str) -> list[dict[str, Any]]:
        events = _openai(base).responses.create(model="m", input="weather in Paris?", stream=True)
        return [e.model_dump() for e in events]

    events, d = through(route, call)
    assert events[-1]["response"]["output"][0]["arguments"] == streams.TOOL_ARGUMENTS
    check_stream(d, "responses", "o4-mini-2025-04-16", inputs=40, outputs=25, reason="tool_calls", events=7)


def test_anthropic_thinking_text_and_tool_use(scripted: Stage) -> None:
    route = _route(scripted, streams.MESSAGES_THINKING_TOOL)

    def call(base: str) -> dict[str, Any]:
        client = closing(anthropic.Anthropic(base_url=base, api_key="k", max_retries=0, timeout=10))
        with client.messages.stream(model="m", max_tokens=1024, messages=[ASK]) as s:
            return s.get_final_message().model_dump()

    final, d = through(route, call)
    assert [b["type"] for b in final["content"]] == ["thinking", "text", "tool_use"]
    assert final["content"][2]["input"] == {"location": "Paris"}
    check_stream(d, "messages", "claude-sonnet-4-5", inputs=25, outputs=89, reason="tool_calls", events=6)
