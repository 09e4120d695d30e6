"""What a request asked of the answer, read in each format's own spelling."""

from __future__ import annotations

from typing import Any

import pytest

from proxy.quality import schemas
from proxy.quality.expect import Expect, expectations

S = {"type": "object", "properties": {"a": {"type": "integer"}}}


@pytest.mark.parametrize(("endpoint", "body", "expected"), [
    ("chat_completions", {"response_format": {"type": "json_object"}}, Expect(True)),
    ("chat_completions", {"response_format": {"type": "json_schema", "json_schema": {"name": "x", "schema": S}}}, Expect(True, S)),
    ("chat_completions", {"response_format": {"type": "text"}}, None),
    ("completions", {"response_format": {"type": "json_object"}}, Expect(True)),
    ("responses", {"text": {"format": {"type": "json_schema", "name": "x", "schema": S}}}, Expect(True, S)),
    ("responses", {"text": {"format": {"type": "json_object"}}}, Expect(True)),
    ("responses", {"text": {"format": {"type": "text"}}}, None),
    ("messages", {"output_format": {"type": "json_schema", "schema": S}}, Expect(True, S)),
    ("ollama_chat", {"format": "json"}, Expect(True)),
    ("ollama_generate", {"format": S}, Expect(True, S)),
    ("ollama_chat", {"format": ""}, None),
    ("llamacpp_completion", {"json_schema": S}, Expect(True, S)),
    ("tgi_generate", {"parameters": {"grammar": {"type": "json", "value": S}}}, Expect(True, S)),
    ("tgi_generate", {"parameters": {"grammar": {"type": "regex", "value": "a+"}}}, None),
    ("embeddings", {"response_format": {"type": "json_object"}}, None),
    ("chat_completions", {"response_format": "json_object"}, None),  # not the API's shape: nothing asked
    ("chat_completions", {"response_format": {"type": "json_schema", "json_schema": {"schema": {}}}}, Expect(True)),
])
def test_json_requests(endpoint: str, body: dict[str, Any], expected: Expect | None) -> None:
    assert expectations(endpoint, body) == expected


def test_tools_in_each_spelling() -> None:
    assert expectations("chat_completions", {"tools": [{"type": "function", "function": {"name": "f", "parameters": S}}],
                                             "functions": [{"name": "g"}]}) == Expect(tools={"f": S, "g": None})
    assert expectations("responses", {"tools": [{"type": "web_search"}, {"type": "function", "name": "f", "parameters": S}]}) \
        == Expect(tools={"f": S})
    assert expectations("messages", {"tools": [{"name": "f", "input_schema": S}]}) == Expect(tools={"f": S})
    assert expectations("ollama_chat", {"tools": [{"type": "function", "function": {"name": "f", "parameters": S}}]}) \
        == Expect(tools={"f": S})
    assert expectations("chat_completions", {"tools": ["junk", {"function": "junk"}, {"function": {"name": 3}}]}) is None


def test_validators_are_cached_and_bounded(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(schemas, "CACHE_SIZE", 4)
    schemas._cache.clear()  # noqa: SLF001 (the cache is what is under test)
    for i in range(10):
        assert schemas.validate({"type": "integer", "maximum": i}, 5) is (i >= 5)
    assert len(schemas._cache) == 4  # noqa: SLF001
    assert schemas.validate({"type": "integer"}, "x") is False
    assert schemas.validate({"type": 12}, 1) is None  # an unusable schema judges nothing
    assert schemas.validate({"$ref": "#/$defs/missing"}, 1) is None
