"""Error bodies in each API family's own shape, so each SDK raises its own error type.

- ``openai`` (OpenAI paths, and the default): ``{"error": {"message", "type", "param",
  "code"}}``, with ``code`` the HTTP status as vLLM sends it.
- ``llamacpp``: the same shape, as llama.cpp's server sends it.
- ``anthropic``: ``{"type": "error", "error": {"type", "message"}}``.
- ``ollama``: ``{"error": "message"}``.
- ``tgi``: ``{"error": "message", "error_type": ...}``.
"""

from __future__ import annotations

import orjson

_ANTHROPIC_TYPES = {
    400: "invalid_request_error", 401: "authentication_error", 403: "permission_error", 404: "not_found_error",
    413: "request_too_large", 429: "rate_limit_error", 529: "overloaded_error", 503: "overloaded_error",
}


def _openai_type(status: int) -> str:
    if status == 429:
        return "rate_limit_error"
    if status == 503:
        return "unavailable_error"
    return "invalid_request_error" if status < 500 else "server_error"


def _tgi_type(status: int) -> str:
    if status in (422, 400):
        return "validation"
    if status in (429, 503):
        return "overloaded"
    return "generation"


def error_body(family: str, status: int, message: str) -> bytes:
    if family == "anthropic":
        kind = _ANTHROPIC_TYPES.get(status, "api_error" if status >= 500 else "invalid_request_error")
        return orjson.dumps({"type": "error", "error": {"type": kind, "message": message}})
    if family == "ollama":
        return orjson.dumps({"error": message})
    if family == "tgi":
        return orjson.dumps({"error": message, "error_type": _tgi_type(status)})
    return orjson.dumps({"error": {"message": message, "type": _openai_type(status), "param": None, "code": status}})
