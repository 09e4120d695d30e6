"""Per wire format: read the output pieces out of one parsed event (or a whole body).

Each extractor gets the object the format's tap already parsed (a stream's chunk or
event, or a non-streaming body) and hands its text, reasoning, refusal and tool-call
pieces to a ``Content``. No parsing of its own, nothing stored here. Only the first
choice (``index`` 0) of an OpenAI answer is read: the checks judge one answer, and
``n > 1`` choices interleave.

Tool calls are keyed the way each stream identifies them across deltas: the call's
``index`` (OpenAI chat), the output item's id (Responses), the content block's index
(Anthropic); Ollama sends each call whole.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from proxy.quality.content import Content

Extractor = Callable[[Content, Any], None]

_REASONING = ("reasoning_content", "reasoning")


def openai(c: Content, obj: Any) -> None:
    """Chat completions and completions: a chunk, or a body."""
    choices = obj.get("choices")
    if not choices:
        return
    choice = choices[0]
    if choice.get("index"):
        return
    delta = choice.get("delta")
    if delta is None:
        delta = choice.get("message")
        if delta is None:
            text = choice.get("text")  # completions
            if text and type(text) is str:
                c.text(text)
            return
    content = delta.get("content")
    if content and type(content) is str:
        c.text(content)
        if len(delta) == 1:  # nearly every chunk of a stream: nothing else to look for
            return
    for field in _REASONING:
        piece = delta.get(field)
        if piece and type(piece) is str:
            c.reasoning(piece)
    refusal = delta.get("refusal")
    if refusal:
        c.refusal(refusal)
    calls = delta.get("tool_calls")
    if calls:
        for i, call in enumerate(calls):
            function = call.get("function") or {}
            c.call(call.get("index", i), function.get("name"), function.get("arguments"))
    legacy = delta.get("function_call")
    if legacy:
        c.call("function_call", legacy.get("name"), legacy.get("arguments"))


_RESPONSES_TEXT = "response.output_text.delta"
_RESPONSES_REASONING = frozenset({"response.reasoning_text.delta", "response.reasoning_summary_text.delta"})


def responses(c: Content, obj: Any) -> None:
    """OpenAI Responses: a stream event, or the response object (a body)."""
    kind = obj.get("type")
    if kind == _RESPONSES_TEXT:
        piece = obj.get("delta")
        if piece and type(piece) is str:
            c.text(piece)
    elif kind in _RESPONSES_REASONING:
        piece = obj.get("delta")
        if piece and type(piece) is str:
            c.reasoning(piece)
    elif kind == "response.function_call_arguments.delta":
        c.call(obj.get("item_id"), None, obj.get("delta"))
    elif kind == "response.refusal.delta":
        c.refusal(obj.get("delta"))
    elif kind == "response.output_item.added":
        item = obj.get("item")
        if type(item) is dict and item.get("type") == "function_call":
            c.call(item.get("id"), item.get("name"), item.get("arguments"))
    elif obj.get("object") == "response":
        for item in obj.get("output") or ():
            _responses_item(c, item)


def _responses_item(c: Content, item: Any) -> None:
    kind = item.get("type")
    if kind == "message":
        for part in item.get("content") or ():
            if part.get("type") == "output_text" and part.get("text"):
                c.text(part["text"])
            elif part.get("type") == "refusal":
                c.refusal(part.get("refusal"))
    elif kind == "function_call":
        c.call(item.get("id") or item.get("call_id"), item.get("name"), item.get("arguments"))
    elif kind == "reasoning":
        for part in item.get("content") or item.get("summary") or ():
            if part.get("text"):
                c.reasoning(part["text"])


def anthropic(c: Content, obj: Any) -> None:
    """Anthropic Messages: a stream event, or the message (a body)."""
    kind = obj.get("type")
    if kind == "content_block_delta":
        delta = obj.get("delta") or {}
        dtype = delta.get("type")
        if dtype == "text_delta":
            piece = delta.get("text")
            if piece and type(piece) is str:
                c.text(piece)
        elif dtype == "input_json_delta":
            c.call(obj.get("index"), None, delta.get("partial_json"))
        elif dtype == "thinking_delta":
            piece = delta.get("thinking")
            if piece and type(piece) is str:
                c.reasoning(piece)
    elif kind == "content_block_start":
        block = obj.get("content_block") or {}
        if block.get("type") == "tool_use":
            c.call(obj.get("index"), block.get("name"), None)
        elif block.get("type") == "text" and block.get("text"):
            c.text(block["text"])
    elif kind == "message":
        for i, block in enumerate(obj.get("content") or ()):
            btype = block.get("type")
            if btype == "text" and block.get("text"):
                c.text(block["text"])
            elif btype == "tool_use":
                c.call_value(i, block.get("name"), block.get("input"))
            elif btype == "thinking" and block.get("thinking"):
                c.reasoning(block["thinking"])


def ollama(c: Content, obj: Any) -> None:
    """Ollama /api/chat and /api/generate: a line, or a body."""
    message = obj.get("message")
    if message:
        content = message.get("content")
        thinking = message.get("thinking")
        for call in message.get("tool_calls") or ():
            function = call.get("function") or {}
            c.call_value(None, function.get("name"), function.get("arguments"))
    else:
        content = obj.get("response")
        thinking = obj.get("thinking")
    if content and type(content) is str:
        c.text(content)
    if thinking and type(thinking) is str:
        c.reasoning(thinking)


def tgi(c: Content, obj: Any) -> None:
    """TGI: a stream event's token (its last event repeats the whole text: ignored), or a body."""
    token = obj.get("token")
    if token is not None:
        if not token.get("special"):
            text = token.get("text")
            if text and type(text) is str:
                c.text(text)
        return
    text = obj.get("generated_text")
    if text and type(text) is str:
        c.text(text)


def llamacpp(c: Content, obj: Any) -> None:
    """llama.cpp /completion: a stream event or the body, both with ``content``."""
    text = obj.get("content")
    if text and type(text) is str:
        c.text(text)


EXTRACTORS: dict[str, Extractor] = {
    "chat_completions": openai,
    "completions": openai,
    "responses": responses,
    "messages": anthropic,
    "ollama_chat": ollama,
    "ollama_generate": ollama,
    "tgi_generate": tgi,
    "llamacpp_completion": llamacpp,
}
