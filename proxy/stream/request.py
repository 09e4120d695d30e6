"""Read what a meter needs from the client's request body: model, stream, include_usage,
and the sampling parameters a span records.

Each format says "stream" its own way: OpenAI, Anthropic and llama.cpp default to a
single JSON answer unless ``stream`` is true; Ollama streams unless ``stream`` is
false; TGI streams on ``/generate_stream`` whatever the body says. A body that is not
a JSON object gives the defaults; nothing here raises.
"""

from __future__ import annotations

from orjson import loads

from proxy.quality.expect import expectations
from proxy.stream.base import RequestInfo
from proxy.stream.endpoints import EMBEDDINGS, OLLAMA_CHAT, OLLAMA_GENERATE, OTHER, TGI_GENERATE

_DEFAULT = RequestInfo()


def inspect_request(endpoint: str, body: bytes, path: str | None = None) -> RequestInfo:
    """Summarize a request body; ``path`` tells TGI's ``/generate_stream`` from ``/generate``."""
    if endpoint == OTHER or not body:
        return _DEFAULT
    try:
        obj = loads(body)
    except Exception:
        return _DEFAULT
    if type(obj) is not dict:
        return _DEFAULT
    model = obj.get("model")
    requested = obj.get("stream")
    if endpoint == OLLAMA_CHAT or endpoint == OLLAMA_GENERATE:
        stream = requested is not False  # Ollama's `stream` is a *bool: absent or null means true
    elif endpoint == TGI_GENERATE:
        stream = requested is True or (path is not None and path.partition("?")[0].endswith("/generate_stream"))
    elif endpoint == EMBEDDINGS:
        stream = False
    else:
        stream = requested is True
    options = obj.get("stream_options")
    # Where each format keeps its sampling parameters: top level (OpenAI, Anthropic,
    # llama.cpp), "options" (Ollama) or "parameters" (TGI).
    params = obj.get("options") or obj.get("parameters") or obj
    if type(params) is not dict:
        params = obj
    return RequestInfo(
        model=model if type(model) is str and model else None,
        stream=stream,
        include_usage=type(options) is dict and options.get("include_usage") is True,
        max_tokens=_int(params, _MAX_TOKENS),
        temperature=_number(params.get("temperature")),
        top_p=_number(params.get("top_p")),
        expect=expectations(endpoint, obj),
    )


# OpenAI chat, legacy and Anthropic; Responses; Ollama; TGI; llama.cpp.
_MAX_TOKENS = ("max_tokens", "max_completion_tokens", "max_output_tokens", "num_predict", "max_new_tokens", "n_predict")


def _int(params: dict[str, object], names: tuple[str, ...]) -> int | None:
    for name in names:
        value = params.get(name)
        if type(value) is int:
            return value
    return None


def _number(value: object) -> float | None:
    return float(value) if type(value) is int or type(value) is float else None
