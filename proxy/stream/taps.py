"""Choose the tap for a response from its endpoint and Content-Type.

``text/event-stream`` gets the format's SSE tap, ``application/x-ndjson`` (or Ollama's
JSON-typed stream) the NDJSON tap, ``application/json`` the JSON-body tap. A missing
Content-Type falls back on what the request asked for. Any other type (an HTML error
page from a gateway, say) and the ``other`` endpoint get no tap: there is nothing a
meter can read from them, and the relay skips the tap's cost entirely.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence

from proxy.stream import anthropic, llamacpp, ollama, openai, responses, tgi
from proxy.stream.base import RequestInfo, StreamSummary, Tap
from proxy.stream.embeddings import EmbeddingsTap
from proxy.stream.endpoints import (
    CHAT_COMPLETIONS,
    COMPLETIONS,
    EMBEDDINGS,
    LLAMACPP_COMPLETION,
    MESSAGES,
    OLLAMA_CHAT,
    OLLAMA_GENERATE,
    RESPONSES,
    TGI_GENERATE,
)
from proxy.stream.jsonbody import JSONBodyTap, JSONHandler
from proxy.stream.ndjson import LineHandler, NDJSONTap
from proxy.stream.sse import SSEHandler, SSETap

_SSE: dict[str, SSEHandler] = {
    CHAT_COMPLETIONS: openai.on_sse,
    COMPLETIONS: openai.on_sse,
    RESPONSES: responses.on_sse,
    MESSAGES: anthropic.on_sse,
    TGI_GENERATE: tgi.on_sse,
    LLAMACPP_COMPLETION: llamacpp.on_sse,
}
_NDJSON: dict[str, LineHandler] = {
    OLLAMA_CHAT: ollama.on_line,
    OLLAMA_GENERATE: ollama.on_line,
}
_JSON: dict[str, JSONHandler] = {
    CHAT_COMPLETIONS: openai.on_json,
    COMPLETIONS: openai.on_json,
    RESPONSES: responses.on_json,
    MESSAGES: anthropic.on_json,
    TGI_GENERATE: tgi.on_json,
    LLAMACPP_COMPLETION: llamacpp.on_json,
    OLLAMA_CHAT: ollama.on_json,
    OLLAMA_GENERATE: ollama.on_json,
}

# Formats whose response headers carry per-request facts (TGI's timing headers).
HeaderHandler = Callable[[StreamSummary, Sequence[tuple[bytes, bytes]]], None]
_HEADERS: dict[str, HeaderHandler] = {
    TGI_GENERATE: tgi.on_headers,
}

_SSE_TYPES = frozenset({b"text/event-stream"})
_NDJSON_TYPES = frozenset({b"application/x-ndjson", b"application/ndjson", b"application/jsonl", b"application/x-jsonlines"})


SSE, NDJSON, JSON = "sse", "ndjson", "json"
STREAMING_FRAMINGS = frozenset({SSE, NDJSON})


def framing(endpoint: str, content_type: bytes | None, info: RequestInfo) -> str | None:
    """How the response body is framed: the one answer to "is this a stream?" (issue 12)."""
    media = content_type.partition(b";")[0].strip().lower() if content_type else b""
    if not media:
        if not info.stream:
            return JSON
        return NDJSON if endpoint in _NDJSON else SSE
    if media in _SSE_TYPES:
        return SSE
    if media in _NDJSON_TYPES:
        return NDJSON
    if media == b"application/json" or media.endswith(b"+json"):
        # Ollama streams answer with a JSON type on some versions and proxies.
        return NDJSON if info.stream and endpoint in _NDJSON else JSON
    return None


def make_tap(endpoint: str, framing: str | None) -> Tap | None:
    """A fresh tap for one response framed as ``framing``, or None when it is not metered."""
    if framing == JSON:
        if endpoint == EMBEDDINGS:
            return EmbeddingsTap()
        json_handler = _JSON.get(endpoint)
        return JSONBodyTap(json_handler) if json_handler is not None else None
    if framing == SSE:
        sse_handler = _SSE.get(endpoint)
        return SSETap(sse_handler) if sse_handler is not None else None
    if framing == NDJSON:
        line_handler = _NDJSON.get(endpoint)
        return NDJSONTap(line_handler) if line_handler is not None else None
    return None


def read_headers(endpoint: str, headers: Sequence[tuple[bytes, bytes]], summary: StreamSummary) -> None:
    """Let the format read the response headers into ``summary``, for the few that use them."""
    handler = _HEADERS.get(endpoint)
    if handler is not None:
        try:
            handler(summary, headers)
        except Exception:  # a header the format cannot read must not reach the relay
            summary.parse_errors += 1
