"""What the client's request asked of the answer: JSON (with or without a schema) and tools.

Read from the request body already parsed for ``RequestInfo``; one to three dict
lookups when a request asks for neither, which is nearly every request. Each format
spells it its own way:

| format | JSON output | tools and their argument schema |
|---|---|---|
| OpenAI chat, completions | ``response_format`` ``json_object`` / ``json_schema.schema`` | ``tools[].function.parameters``, legacy ``functions[].parameters`` |
| Responses | ``text.format`` ``json_object`` / ``json_schema`` (``schema``) | ``tools[]`` of type ``function``: ``parameters`` |
| Anthropic | ``output_format`` ``json_schema`` (``schema``) | ``tools[].input_schema`` |
| Ollama | ``format``: ``"json"`` or a schema object | ``tools[].function.parameters`` |
| llama.cpp ``/completion`` | ``json_schema``, or ``response_format`` as OpenAI | — |
| TGI | ``parameters.grammar`` of type ``json`` (``value``) | — |
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

# A tool the request declared, by name: its argument schema (None: any JSON object).
Tools = dict[str, Any]


@dataclass(frozen=True, slots=True)
class Expect:
    json: bool = False
    # The JSON Schema the output must match; None when only "some JSON" was asked for.
    schema: Any = None
    tools: Tools | None = None


def expectations(endpoint: str, body: dict[str, Any]) -> Expect | None:
    """What ``body`` (a request to ``endpoint``) asked of the answer; None for nothing checkable."""
    reader = _READERS.get(endpoint)
    if reader is None:
        return None
    json, schema = reader(body)
    tools = _tools(endpoint, body)
    if not json and tools is None:
        return None
    return Expect(json, schema, tools)


def _openai(body: dict[str, Any]) -> tuple[bool, Any]:
    def schema(fmt: dict[str, Any]) -> Any:
        spec = fmt.get("json_schema")
        return spec.get("schema") if type(spec) is dict else None
    return _asked(body.get("response_format"), schema)


def _responses(body: dict[str, Any]) -> tuple[bool, Any]:
    text = body.get("text")
    return _asked(text.get("format") if type(text) is dict else None, lambda fmt: fmt.get("schema"))


def _asked(fmt: Any, schema: Callable[[dict[str, Any]], Any]) -> tuple[bool, Any]:
    """(JSON asked for, its schema) from an OpenAI-style format object: json_object or json_schema."""
    if type(fmt) is not dict:
        return False, None
    kind = fmt.get("type")
    if kind == "json_object":
        return True, None
    if kind == "json_schema":
        return True, _schema(schema(fmt))
    return False, None
    kind = fmt.get("type")
    if kind == "json_object":
        return True, None
    if kind == "json_schema":
        return True, _schema(fmt.get("schema"))
    return False, None


def _anthropic(body: dict[str, Any]) -> tuple[bool, Any]:
    fmt = body.get("output_format")
    if type(fmt) is dict and fmt.get("type") == "json_schema":
        return True, _schema(fmt.get("schema"))
    return False, None


def _ollama(body: dict[str, Any]) -> tuple[bool, Any]:
    fmt = body.get("format")
    if fmt == "json":
        return True, None
    if type(fmt) is dict:
        return True, _schema(fmt)
    return False, None


def _llamacpp(body: dict[str, Any]) -> tuple[bool, Any]:
    schema = body.get("json_schema")
    if type(schema) is dict:
        return True, _schema(schema)
    return _openai(body)


def _tgi(body: dict[str, Any]) -> tuple[bool, Any]:
    params = body.get("parameters")
    grammar = params.get("grammar") if type(params) is dict else None
    if type(grammar) is dict and grammar.get("type") == "json":
        value = grammar.get("value")
        return True, _schema(value) if type(value) is dict else None
    return False, None


def _schema(value: Any) -> Any:
    # An empty schema accepts everything: skip validating against it.
    return value if type(value) is dict and value else None


def _tools(endpoint: str, body: dict[str, Any]) -> Tools | None:
    tools: Tools = {}
    for tool in body.get("tools") or ():
        if type(tool) is not dict:
            continue
        if endpoint == "messages":
            name, schema = tool.get("name"), tool.get("input_schema")
        elif endpoint == "responses":
            if tool.get("type") != "function":
                continue
            name, schema = tool.get("name"), tool.get("parameters")
        else:
            function = tool.get("function")
            if type(function) is not dict:
                continue
            name, schema = function.get("name"), function.get("parameters")
        if type(name) is str:
            tools[name] = _schema(schema)
    for function in body.get("functions") or ():  # OpenAI's deprecated single-function form
        if type(function) is dict and type(function.get("name")) is str:
            tools[function["name"]] = _schema(function.get("parameters"))
    return tools or None


_READERS = {
    "chat_completions": _openai,
    "completions": _openai,
    "responses": _responses,
    "messages": _anthropic,
    "ollama_chat": _ollama,
    "ollama_generate": _ollama,
    "llamacpp_completion": _llamacpp,
    "tgi_generate": _tgi,
}
