"""The closed set of ``endpoint`` label values and the request paths they stand for.

DESIGN.md section 3 fixes the table. The lookup is one dict access on the path without
its query string; any other path is ``other`` and is relayed without parsing.
"""

from __future__ import annotations

CHAT_COMPLETIONS = "chat_completions"
COMPLETIONS = "completions"
RESPONSES = "responses"
MESSAGES = "messages"
EMBEDDINGS = "embeddings"
OLLAMA_CHAT = "ollama_chat"
OLLAMA_GENERATE = "ollama_generate"
TGI_GENERATE = "tgi_generate"
LLAMACPP_COMPLETION = "llamacpp_completion"
OTHER = "other"

ENDPOINTS = (
    CHAT_COMPLETIONS,
    COMPLETIONS,
    RESPONSES,
    MESSAGES,
    EMBEDDINGS,
    OLLAMA_CHAT,
    OLLAMA_GENERATE,
    TGI_GENERATE,
    LLAMACPP_COMPLETION,
    OTHER,
)

_BY_PATH = {
    "/v1/chat/completions": CHAT_COMPLETIONS,
    "/v1/completions": COMPLETIONS,
    "/v1/responses": RESPONSES,
    "/v1/messages": MESSAGES,
    "/v1/embeddings": EMBEDDINGS,
    "/api/embed": EMBEDDINGS,
    "/api/embeddings": EMBEDDINGS,
    "/api/chat": OLLAMA_CHAT,
    "/api/generate": OLLAMA_GENERATE,
    "/generate": TGI_GENERATE,
    "/generate_stream": TGI_GENERATE,
    "/completion": LLAMACPP_COMPLETION,
}


def classify(path: str) -> str:
    """The endpoint label for a request path (with or without a query string)."""
    endpoint = _BY_PATH.get(path)
    if endpoint is None:
        endpoint = _BY_PATH.get(path.partition("?")[0], OTHER)
    return endpoint
