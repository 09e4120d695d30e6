"""Answers on the wire, built the way each API sends them, from a script of output pieces.

``Answer`` says what the model "said": text pieces (one delta each), reasoning pieces,
and tool calls (a name and its argument text in pieces). Each builder returns the bytes
a server of that format sends for it, streamed or as one body. The shapes follow the
public API references (and tests/stream/fixtures, recorded from them).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import orjson

MODEL = "quality-test-model"


@dataclass(frozen=True)
class ToolCall:
    name: str
    pieces: tuple[str, ...]

    @property
    def arguments(self) -> str:
        return "".join(self.pieces)


@dataclass(frozen=True)
class Answer:
    text: tuple[str, ...] = ()
    calls: tuple[ToolCall, ...] = ()
    reasoning: tuple[str, ...] = field(default=())

    @property
    def whole(self) -> str:
        return "".join(self.text)


def pieces(text: str, size: int = 7) -> tuple[str, ...]:
    return tuple(text[i : i + size] for i in range(0, len(text), size))


def _sse(obj: Any, event: str | None = None) -> bytes:
    head = f"event: {event}\n".encode() if event else b""
    return head + b"data: " + orjson.dumps(obj) + b"\n\n"


def openai_chat_sse(a: Answer) -> bytes:
    def chunk(delta: dict[str, Any], finish: str | None = None) -> bytes:
        return _sse({"id": "chatcmpl-q", "object": "chat.completion.chunk", "created": 1, "model": MODEL,
                     "choices": [{"index": 0, "delta": delta, "logprobs": None, "finish_reason": finish}]})

    out = [chunk({"role": "assistant", "content": ""})]
    out += [chunk({"reasoning_content": r}) for r in a.reasoning]
    out += [chunk({"content": t}) for t in a.text]
    for i, call in enumerate(a.calls):
        out.append(chunk({"tool_calls": [{"index": i, "id": f"call_{i}", "type": "function",
                                          "function": {"name": call.name, "arguments": ""}}]}))
        out += [chunk({"tool_calls": [{"index": i, "function": {"arguments": p}}]}) for p in call.pieces]
    out.append(chunk({}, "tool_calls" if a.calls else "stop"))
    return b"".join(out) + b"data: [DONE]\n\n"


def openai_chat_json(a: Answer) -> bytes:
    message: dict[str, Any] = {"role": "assistant", "content": a.whole or None}
    if a.calls:
        message["tool_calls"] = [{"id": f"call_{i}", "type": "function",
                                  "function": {"name": c.name, "arguments": c.arguments}} for i, c in enumerate(a.calls)]
    return orjson.dumps({"id": "chatcmpl-q", "object": "chat.completion", "created": 1, "model": MODEL,
                         "choices": [{"index": 0, "message": message, "finish_reason": "stop"}]})


def responses_sse(a: Answer) -> bytes:
    response = {"id": "resp_q", "object": "response", "status": "in_progress", "model": MODEL, "output": []}
    out = [_sse({"type": "response.created", "response": response}, "response.created")]
    out += [_sse({"type": "response.reasoning_summary_text.delta", "item_id": "rs_q", "output_index": 0,
                  "summary_index": 0, "delta": r}, "response.reasoning_summary_text.delta") for r in a.reasoning]
    if a.text:
        out.append(_sse({"type": "response.output_item.added", "output_index": 0,
                         "item": {"id": "msg_q", "type": "message", "role": "assistant", "content": []}},
                        "response.output_item.added"))
        out += [_sse({"type": "response.output_text.delta", "item_id": "msg_q", "output_index": 0, "content_index": 0,
                      "delta": t}, "response.output_text.delta") for t in a.text]
    for i, call in enumerate(a.calls):
        item = {"type": "function_call", "id": f"fc_{i}", "call_id": f"call_{i}", "name": call.name, "arguments": ""}
        out.append(_sse({"type": "response.output_item.added", "output_index": i + 1, "item": item},
                        "response.output_item.added"))
        out += [_sse({"type": "response.function_call_arguments.delta", "item_id": f"fc_{i}", "output_index": i + 1,
                      "delta": p}, "response.function_call_arguments.delta") for p in call.pieces]
    done = dict(response, status="completed", output=_responses_output(a))
    out.append(_sse({"type": "response.completed", "response": done}, "response.completed"))
    return b"".join(out)


def _responses_output(a: Answer) -> list[dict[str, Any]]:
    output: list[dict[str, Any]] = []
    if a.text:
        output.append({"id": "msg_q", "type": "message", "role": "assistant",
                       "content": [{"type": "output_text", "text": a.whole, "annotations": []}]})
    output += [{"type": "function_call", "id": f"fc_{i}", "call_id": f"call_{i}", "name": c.name,
                "arguments": c.arguments} for i, c in enumerate(a.calls)]
    return output


def responses_json(a: Answer) -> bytes:
    return orjson.dumps({"id": "resp_q", "object": "response", "status": "completed", "model": MODEL,
                         "output": _responses_output(a)})


def anthropic_sse(a: Answer) -> bytes:
    out = [_sse({"type": "message_start", "message": {"id": "msg_q", "type": "message", "role": "assistant",
                                                       "model": MODEL, "content": [],
                                                       "usage": {"input_tokens": 5, "output_tokens": 1}}},
                "message_start")]
    index = 0
    if a.text:
        out.append(_sse({"type": "content_block_start", "index": index, "content_block": {"type": "text", "text": ""}},
                        "content_block_start"))
        out += [_sse({"type": "content_block_delta", "index": index, "delta": {"type": "text_delta", "text": t}},
                     "content_block_delta") for t in a.text]
        out.append(_sse({"type": "content_block_stop", "index": index}, "content_block_stop"))
        index += 1
    for call in a.calls:
        out.append(_sse({"type": "content_block_start", "index": index,
                         "content_block": {"type": "tool_use", "id": f"toolu_{index}", "name": call.name, "input": {}}},
                        "content_block_start"))
        out += [_sse({"type": "content_block_delta", "index": index,
                      "delta": {"type": "input_json_delta", "partial_json": p}}, "content_block_delta")
                for p in call.pieces]
        out.append(_sse({"type": "content_block_stop", "index": index}, "content_block_stop"))
        index += 1
    stop = "tool_use" if a.calls else "end_turn"
    out.append(_sse({"type": "message_delta", "delta": {"stop_reason": stop}, "usage": {"output_tokens": 9}},
                    "message_delta"))
    out.append(_sse({"type": "message_stop"}, "message_stop"))
    return b"".join(out)


def anthropic_json(a: Answer) -> bytes:
    """A body: tool inputs are objects here, so broken argument text cannot be written (it
    would not be a valid Messages body); ``calls`` must hold JSON objects."""
    content: list[dict[str, Any]] = [{"type": "text", "text": a.whole}] if a.text else []
    content += [{"type": "tool_use", "id": f"toolu_{i}", "name": c.name, "input": orjson.loads(c.arguments or "{}")}
                for i, c in enumerate(a.calls)]
    return orjson.dumps({"id": "msg_q", "type": "message", "role": "assistant", "model": MODEL, "content": content,
                         "stop_reason": "tool_use" if a.calls else "end_turn",
                         "usage": {"input_tokens": 5, "output_tokens": 9}})


def ollama_chat_ndjson(a: Answer) -> bytes:
    """Ollama sends each tool call whole, arguments as an object: ``calls`` must hold JSON objects."""
    def line(message: dict[str, Any], done: bool = False) -> bytes:
        obj: dict[str, Any] = {"model": MODEL, "created_at": "2025-01-01T00:00:00Z", "message": message, "done": done}
        if done:
            obj.update(done_reason="stop", prompt_eval_count=5, eval_count=9)
        return orjson.dumps(obj) + b"\n"

    out = [line({"role": "assistant", "content": "", "thinking": r}) for r in a.reasoning]
    out += [line({"role": "assistant", "content": t}) for t in a.text]
    out += [line({"role": "assistant", "content": "",
                  "tool_calls": [{"function": {"name": c.name, "arguments": orjson.loads(c.arguments or "{}")}}]})
            for c in a.calls]
    out.append(line({"role": "assistant", "content": ""}, done=True))
    return b"".join(out)


def ollama_generate_ndjson(a: Answer) -> bytes:
    out = [orjson.dumps({"model": MODEL, "response": t, "done": False}) + b"\n" for t in a.text]
    out.append(orjson.dumps({"model": MODEL, "response": "", "done": True, "done_reason": "stop",
                             "prompt_eval_count": 5, "eval_count": 9}) + b"\n")
    return b"".join(out)


def ollama_chat_json(a: Answer) -> bytes:
    message: dict[str, Any] = {"role": "assistant", "content": a.whole}
    if a.calls:
        message["tool_calls"] = [{"function": {"name": c.name, "arguments": orjson.loads(c.arguments or "{}")}}
                                 for c in a.calls]
    return orjson.dumps({"model": MODEL, "message": message, "done": True, "done_reason": "stop",
                         "prompt_eval_count": 5, "eval_count": 9})
