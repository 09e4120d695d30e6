"""Which model endpoints exist, and how each reads its request."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from proxy.simulator import anthropic, embeddings, llamacpp, ollama, openai_chat, responses, tgi
from proxy.simulator.job import Format, Job
from proxy.simulator.tokens import count_words


@dataclass(frozen=True)
class Endpoint:
    """A POST path that costs model time.

    ``family`` picks the error shape (errors.py). ``stream`` decides from the body
    whether to stream. ``prompt`` counts input tokens. ``generates`` is False for
    embeddings, which produce no output tokens and answer after the prefill.
    ``check`` returns an error message for a request the real server would refuse.
    """

    family: str
    make: Callable[[Job, int], Format]
    stream: Callable[[dict[str, Any]], bool]
    prompt: Callable[[dict[str, Any]], int]
    generates: bool = True
    check: Callable[[dict[str, Any]], str | None] | None = None


def _stream_flag(body: dict[str, Any]) -> bool:
    return body.get("stream") is True


def _stream_unless_false(body: dict[str, Any]) -> bool:
    # Ollama streams unless told not to.
    return body.get("stream") is not False


def _always(body: dict[str, Any]) -> bool:
    return True


def _never(body: dict[str, Any]) -> bool:
    return False


def _fields(*names: str) -> Callable[[dict[str, Any]], int]:
    def count(body: dict[str, Any]) -> int:
        return sum(count_words(body.get(name)) for name in names)
    return count


def _tgi_check(body: dict[str, Any]) -> str | None:
    params = body.get("parameters")
    value = params.get("max_new_tokens") if isinstance(params, dict) else None
    if isinstance(value, int) and not isinstance(value, bool) and value < 1:
        return "Input validation error: `max_new_tokens` must be strictly positive"
    if not isinstance(body.get("inputs"), str):
        return "Input validation error: `inputs` must be a string"
    return None


def _plain(factory: Callable[[Job], Format]) -> Callable[[Job, int], Format]:
    return lambda job, seed: factory(job)


ROUTES: dict[str, Endpoint] = {
    "/v1/chat/completions": Endpoint("openai", _plain(openai_chat.ChatFormat), _stream_flag, _fields("messages")),
    "/v1/completions": Endpoint("openai", _plain(openai_chat.CompletionFormat), _stream_flag, _fields("prompt")),
    "/v1/responses": Endpoint("openai", _plain(responses.ResponsesFormat), _stream_flag,
                              _fields("input", "instructions")),
    "/v1/messages": Endpoint("anthropic", _plain(anthropic.MessagesFormat), _stream_flag,
                             _fields("messages", "system")),
    "/v1/embeddings": Endpoint("openai", embeddings.OpenAIEmbeddings, _never, _fields("input"), generates=False),
    "/api/chat": Endpoint("ollama", _plain(ollama.ChatFormat), _stream_unless_false, _fields("messages")),
    "/api/generate": Endpoint("ollama", _plain(ollama.GenerateFormat), _stream_unless_false,
                              _fields("prompt", "system")),
    "/api/embed": Endpoint("ollama", embeddings.OllamaEmbed, _never, _fields("input"), generates=False),
    "/api/embeddings": Endpoint("ollama", embeddings.OllamaEmbeddings, _never, _fields("prompt"), generates=False),
    "/generate_stream": Endpoint("tgi", _plain(tgi.GenerateFormat), _always, _fields("inputs"), check=_tgi_check),
    "/generate": Endpoint("tgi", _plain(tgi.GenerateFormat), _never, _fields("inputs"), check=_tgi_check),
    "/completion": Endpoint("llamacpp", _plain(llamacpp.CompletionFormat), _stream_flag, _fields("prompt")),
}
