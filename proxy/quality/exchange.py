"""The exchange a judge reads: the request's context and question, and the answer.

Read from the request body of a sampled request, in each format's shape: the last user
message is the question; system prompts, instructions and earlier messages are the
context. Each part is cut to ``PART_LIMIT`` characters (the question and context keep
their ends, where the latest turn is), so a judge call is bounded whatever the request.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import orjson

PART_LIMIT = 8 * 1024


@dataclass(frozen=True, slots=True)
class Exchange:
    request_id: str
    model: str  # the model label the request's metrics carry
    context: str
    question: str
    answer: str


def prompt_parts(endpoint: str, body: bytes) -> tuple[str, str]:
    """(context, question) from a request body; empty strings for what it does not say."""
    try:
        obj = orjson.loads(body)
    except orjson.JSONDecodeError:
        return "", ""
    if type(obj) is not dict:
        return "", ""
    context: list[str] = []
    for field in ("system", "instructions"):  # Anthropic, Ollama generate; Responses
        if obj.get(field):
            context.append(_text(obj[field]))
    turns = obj.get("messages")
    if turns is None:
        turns = obj.get("input")  # Responses: a string or a list of items
    if type(turns) is str:
        turns = [{"role": "user", "content": turns}]
    question = ""
    if type(turns) is list:
        question, earlier = _last_user(turns)
        context.extend(earlier)
    if not question:
        question = _text(obj.get("prompt") or obj.get("inputs") or "")  # completions, Ollama generate, TGI
    return _cut("\n\n".join(c for c in context if c)), _cut(question)


def _last_user(turns: list[Any]) -> tuple[str, list[str]]:
    last = -1
    for i, turn in enumerate(turns):
        if type(turn) is dict and turn.get("role") == "user":
            last = i
    earlier = [f"{t.get('role', '')}: {_text(t.get('content'))}" for t in turns[:max(last, 0)] if type(t) is dict]
    question = _text(turns[last].get("content")) if last >= 0 else ""
    return question, earlier


def _text(value: Any) -> str:
    """The text of a message's content: a string, or the text parts of a list of parts."""
    if type(value) is str:
        return value
    if type(value) is list:
        return "\n".join(_text(part.get("text") if type(part) is dict else part) for part in value)
    return ""


def _cut(text: str) -> str:
    return text if len(text) <= PART_LIMIT else "[...]" + text[-PART_LIMIT:]
