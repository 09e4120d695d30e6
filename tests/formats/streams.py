"""Streams the simulator does not produce, written from each API's documentation.

Each is split into ``head`` (sent at once), ``body`` (one step per ``TBT``, starting at
``TTFT``; every body step holds exactly one token event unless a test says otherwise)
and ``tail``. Sources: OpenAI's chat streaming and function-calling guides (tool-call
deltas), DeepSeek's and vLLM's reasoning docs (``reasoning_content``; ``reasoning``
since vLLM 0.11), OpenAI's Responses streaming reference, Anthropic's streaming guide
(thinking, tool use, ``ping``, ``error``), Ollama's API reference, TGI's and
llama.cpp's server READMEs.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import orjson


@dataclass(frozen=True)
class Stream:
    head: tuple[bytes, ...]
    body: tuple[bytes, ...]
    tail: tuple[bytes, ...]


def data(obj: Any, event: str | None = None) -> bytes:
    """One SSE event: an optional ``event:`` line and one ``data:`` line."""
    line = b"data: " + (obj if isinstance(obj, bytes) else orjson.dumps(obj)) + b"\n\n"
    return b"event: " + event.encode() + b"\n" + line if event else line


def named(event: str, obj: dict[str, Any]) -> bytes:
    """An event whose data repeats its name as ``type`` (Anthropic, Responses)."""
    return data({"type": event, **obj}, event)


# --- OpenAI chat completions -------------------------------------------------------------

CHAT_ID = {"id": "chatcmpl-9xY", "object": "chat.completion.chunk", "created": 1739480000, "model": "deepseek-r1"}


def chunk(delta: dict[str, Any], finish: str | None = None, **extra: Any) -> bytes:
    return data({**CHAT_ID, "choices": [{"index": 0, "delta": delta, "logprobs": None, "finish_reason": finish}],
                 **extra})


def _usage_chunk(prompt: int, completion: int, reasoning: int = 0) -> bytes:
    usage = {"prompt_tokens": prompt, "completion_tokens": completion, "total_tokens": prompt + completion,
             "completion_tokens_details": {"reasoning_tokens": reasoning}}
    return data({**CHAT_ID, "choices": [], "usage": usage})


DONE = b"data: [DONE]\n\n"

# Reasoning first (DeepSeek's and older vLLM's ``reasoning_content``), then the answer;
# a keep-alive comment on the way; usage at the end (the client asked for it).
CHAT_REASONING = Stream(
    head=(chunk({"role": "assistant", "content": None, "reasoning_content": ""}), b": keep-alive\n\n"),
    body=tuple(chunk({"reasoning_content": t}) for t in ("Okay", ", 9.11", " vs", " 9.8")) + tuple(
        chunk({"content": t}) for t in ("9.8", " is", " greater", ".")),
    tail=(chunk({}, "stop"), _usage_chunk(prompt=17, completion=31, reasoning=23), DONE),
)

_CALL = {"index": 0, "id": "call_DdmO9pD3xa9XTPNJ32zg2hcA", "type": "function",
         "function": {"name": "get_weather", "arguments": ""}}


def _args(text: str) -> bytes:
    return chunk({"tool_calls": [{"index": 0, "function": {"arguments": text}}]})


# vLLM 0.11+ names reasoning ``reasoning``; the call's first chunk (name, empty arguments)
# carries no output and rides with the first argument fragment. No usage: estimated.
CHAT_TOOL_CALL = Stream(
    head=(chunk({"role": "assistant", "content": None}),),
    body=(chunk({"reasoning": "Need"}), chunk({"reasoning": " weather"}),
          chunk({"tool_calls": [_CALL]}) + _args('{"'), _args("location"), _args('":"'), _args("Paris"),
          _args(", France"), _args('"}')),
    tail=(chunk({}, "tool_calls"), DONE),
)
TOOL_ARGUMENTS = '{"location":"Paris, France"}'

# --- OpenAI Responses ---------------------------------------------------------------------

_RESPONSE = {"id": "resp_67c9", "object": "response", "created_at": 1741290958, "model": "o4-mini-2025-04-16",
             "output": [], "usage": None, "status": "in_progress"}
_CALL_ITEM = {"type": "function_call", "id": "fc_12", "call_id": "call_12", "name": "get_weather", "arguments": "",
              "status": "in_progress"}
_DONE_ITEM = {**_CALL_ITEM, "arguments": TOOL_ARGUMENTS, "status": "completed"}


def _seq(n: int, event: str, **obj: Any) -> bytes:
    return named(event, {"sequence_number": n, **obj})


def _reason(n: int, text: str) -> bytes:
    return _seq(n, "response.reasoning_summary_text.delta", item_id="rs_1", output_index=0, summary_index=0,
                delta=text)


def _fn_args(n: int, text: str) -> bytes:
    return _seq(n, "response.function_call_arguments.delta", item_id="fc_12", output_index=1, delta=text)


RESPONSES_TOOL_CALL = Stream(
    head=(_seq(0, "response.created", response=_RESPONSE),
          _seq(1, "response.in_progress", response=_RESPONSE),
          _seq(2, "response.output_item.added", output_index=0,
               item={"type": "reasoning", "id": "rs_1", "summary": []})),
    body=(_reason(3, "**Checking"), _reason(4, " the weather**"),
          _seq(5, "response.output_item.added", output_index=1, item=_CALL_ITEM) + _fn_args(6, '{"'),
          _fn_args(7, 'location":"'), _fn_args(8, "Paris"), _fn_args(9, ", France"), _fn_args(10, '"}')),
    tail=(_seq(11, "response.function_call_arguments.done", item_id="fc_12", output_index=1, arguments=TOOL_ARGUMENTS),
          _seq(12, "response.output_item.done", output_index=1, item=_DONE_ITEM),
          _seq(13, "response.completed", response={
              **_RESPONSE, "status": "completed", "output": [_DONE_ITEM],
              "usage": {"input_tokens": 40, "input_tokens_details": {"cached_tokens": 0}, "output_tokens": 25,
                        "output_tokens_details": {"reasoning_tokens": 16}, "total_tokens": 65}})),
)

# --- Anthropic Messages -------------------------------------------------------------------

_MESSAGE: dict[str, Any] = {"id": "msg_01Xy", "type": "message", "role": "assistant", "content": [], "model": "claude-sonnet-4-5",
            "stop_reason": None, "stop_sequence": None, "usage": {"input_tokens": 25, "output_tokens": 1}}


def block_delta(index: int, delta: dict[str, Any]) -> bytes:
    return named("content_block_delta", {"index": index, "delta": delta})


def text(index: int, value: str) -> bytes:
    return block_delta(index, {"type": "text_delta", "text": value})


MESSAGE_START = named("message_start", {"message": _MESSAGE})
PING = named("ping", {})

# Extended thinking, then text, then a tool call: thinking, text and tool-input deltas
# are token events; the signature and the empty first input fragment are not.
MESSAGES_THINKING_TOOL = Stream(
    head=(MESSAGE_START,
          named("content_block_start", {"index": 0, "content_block": {"type": "thinking", "thinking": ""}}), PING),
    body=(block_delta(0, {"type": "thinking_delta", "thinking": "The user wants"}),
          block_delta(0, {"type": "thinking_delta", "thinking": " the weather."})
          + block_delta(0, {"type": "signature_delta", "signature": "EqQBCgIYAhIM1gbcDa9GJwZA2b3hGgxBdjrkzLoky3dl1pk"})
          + named("content_block_stop", {"index": 0})
          + named("content_block_start", {"index": 1, "content_block": {"type": "text", "text": ""}}),
          text(1, "Let me"),
          text(1, " check.") + named("content_block_stop", {"index": 1})
          + named("content_block_start", {"index": 2, "content_block": {
              "type": "tool_use", "id": "toolu_01T1", "name": "get_weather", "input": {}}})
          + block_delta(2, {"type": "input_json_delta", "partial_json": ""}),
          block_delta(2, {"type": "input_json_delta", "partial_json": '{"location":'}),
          block_delta(2, {"type": "input_json_delta", "partial_json": ' "Paris"}'})),
    tail=(named("content_block_stop", {"index": 2}),
          named("message_delta", {"delta": {"stop_reason": "tool_use", "stop_sequence": None},
                                  "usage": {"output_tokens": 89}}),
          named("message_stop", {})),
)

OVERLOADED = named("error", {"error": {"type": "overloaded_error", "message": "Overloaded"}})
