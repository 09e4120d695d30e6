"""Run the response checks over an answer's bytes, split into chunks, as the relay does.

The bytes go through the real tap of their format (``make_tap``) with the checks'
``observe`` on its summary: what the checks see is what the format's parse produced.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from dataclasses import dataclass
from typing import Any

from proxy.quality.checks import CHECKS, ResponseChecks, Result
from proxy.quality.expect import expectations
from proxy.stream.base import RequestInfo
from proxy.stream.taps import framing, make_tap
from tests.quality import streams

SSE = b"text/event-stream"
NDJSON = b"application/x-ndjson"
JSON = b"application/json"

ALL = frozenset(CHECKS)


@dataclass(frozen=True)
class Wire:
    """One format's way to send an answer: its endpoint, framing and builder."""

    name: str
    endpoint: str
    content_type: bytes
    build: Callable[[streams.Answer], bytes]
    # Whether a tool call's argument text can be broken on this wire (it is an object
    # in Ollama's lines and in Anthropic's bodies, so it always parses there).
    text_arguments: bool = True

    @property
    def stream(self) -> bool:
        return self.content_type != JSON


WIRES = (
    Wire("openai_chat_sse", "chat_completions", SSE, streams.openai_chat_sse),
    Wire("openai_chat_json", "chat_completions", JSON, streams.openai_chat_json),
    Wire("responses_sse", "responses", SSE, streams.responses_sse),
    Wire("responses_json", "responses", JSON, streams.responses_json),
    Wire("anthropic_sse", "messages", SSE, streams.anthropic_sse),
    Wire("anthropic_json", "messages", JSON, streams.anthropic_json, text_arguments=False),
    Wire("ollama_chat_ndjson", "ollama_chat", NDJSON, streams.ollama_chat_ndjson, text_arguments=False),
    Wire("ollama_chat_json", "ollama_chat", JSON, streams.ollama_chat_json, text_arguments=False),
)


def split(body: bytes, points: Iterable[int]) -> list[bytes]:
    cuts = sorted({p for p in points if 0 < p < len(body)})
    bounds = [0, *cuts, len(body)]
    return [body[a:b] for a, b in zip(bounds, bounds[1:])]


def run(wire: Wire, request: dict[str, Any], chunks: list[bytes], enabled: frozenset[str] = ALL) -> list[Result]:
    """The check results for an answer to ``request`` arriving as ``chunks`` on ``wire``."""
    info = RequestInfo(stream=wire.stream)
    tap = make_tap(wire.endpoint, framing(wire.endpoint, wire.content_type, info))
    assert tap is not None
    checks = ResponseChecks.create(wire.endpoint, enabled, expectations(wire.endpoint, request))
    assert checks is not None
    tap.summary.observer = checks.observe
    for chunk in chunks:
        tap.feed(chunk)
    tap.close()
    assert tap.summary.parse_errors == 0
    assert checks.errors == 0
    return checks.results()
