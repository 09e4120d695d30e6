"""Recorded responses (tests/stream/fixtures, written from each format's public docs)
and the summaries a tap must produce from them."""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path

from proxy.stream.base import RequestInfo, StreamSummary, Tap
from proxy.stream.taps import framing, make_tap

FIXTURES = Path(__file__).parent / "fixtures"

SSE = b"text/event-stream"
NDJSON = b"application/x-ndjson"
JSON = b"application/json; charset=utf-8"


@dataclass(frozen=True)
class Case:
    fixture: str
    endpoint: str
    content_type: bytes
    expected: StreamSummary
    stream: bool = True

    @property
    def body(self) -> bytes:
        return (FIXTURES / self.fixture).read_bytes()

    def tap(self) -> Tap:
        tap = make_tap(self.endpoint, framing(self.endpoint, self.content_type, RequestInfo(stream=self.stream)))
        assert tap is not None
        return tap


def summary(model: str | None, inp: int | None, out: int | None, events: int, finish: str | None) -> StreamSummary:
    return StreamSummary(model=model, input_tokens=inp, output_tokens=out, token_events=events, finish_reason=finish)


STREAMS = [
    Case("openai_chat.sse", "chat_completions", SSE, summary("gpt-4o-mini-2024-07-18", 9, 9, 7, "stop")),
    Case("openai_chat_tools.sse", "chat_completions", SSE, summary("gpt-4.1-2025-04-14", None, None, 7, "tool_calls")),
    Case("llamacpp_oai_chat.sse", "chat_completions", SSE, summary("Qwen3-0.6B-Q8_0.gguf", 12, 16, 5, "length")),
    Case("openai_completions.sse", "completions", SSE, summary("meta-llama/Llama-3.1-8B-Instruct", 6, 5, 5, "length")),
    Case("responses.sse", "responses", SSE, summary("gpt-4.1-2025-04-14", 37, 11, 3, "stop")),
    Case("responses_tools.sse", "responses", SSE, summary("o4-mini-2025-04-16", 291, 87, 5, "tool_calls")),
    Case("anthropic.sse", "messages", SSE, summary("claude-sonnet-4-5-20250929", 572, 89, 6, "tool_calls")),
    Case("ollama_chat.ndjson", "ollama_chat", NDJSON, summary("qwen3:0.6b", 26, 282, 6, "stop")),
    Case("ollama_generate.ndjson", "ollama_generate", NDJSON, summary("llama3.2", 26, 4, 4, "length")),
    Case("tgi_generate_stream.sse", "tgi_generate", SSE, summary(None, 7, 5, 4, "stop")),
    Case("llamacpp_completion.sse", "llamacpp_completion", SSE, summary("gemma-3-1b-it-Q4_K_M.gguf", 6, 4, 4, "length")),
]

BODIES = [
    Case("openai_chat.json", "chat_completions", JSON, summary("gpt-4.1-2025-04-14", 19, 10, 0, "stop"), stream=False),
    Case("responses.json", "responses", JSON, summary("gpt-4o-2024-08-06", 36, 16, 0, "length"), stream=False),
    Case("anthropic.json", "messages", JSON, summary("claude-sonnet-4-5-20250929", 2100, 503, 0, "length"), stream=False),
    Case("ollama_chat.json", "ollama_chat", JSON, summary("llama3.2", 26, 298, 0, "stop"), stream=False),
    Case("tgi_generate.json", "tgi_generate", JSON, summary(None, 6, 8, 0, "length"), stream=False),
    Case("llamacpp_completion.json", "llamacpp_completion", JSON, summary("gemma-3-1b-it-Q4_K_M.gguf", 6, 7, 0, "stop"), stream=False),
    Case("embeddings_openai.json", "embeddings", JSON, summary("text-embedding-3-small", 8, None, 0, None), stream=False),
    Case("ollama_embed.json", "embeddings", JSON, summary("all-minilm", 8, None, 0, None), stream=False),
]


def run(tap: Tap, chunks: Iterable[bytes]) -> StreamSummary:
    """Feed chunks and close; check the returned event counts add up to the summary's."""
    returned = sum(tap.feed(chunk) for chunk in chunks) + tap.close()
    assert returned == tap.summary.token_events
    return tap.summary


def split(data: bytes, points: Iterable[int]) -> list[bytes]:
    cuts = [0, *sorted(set(points)), len(data)]
    return [data[a:b] for a, b in zip(cuts, cuts[1:])]


def line_end_variants(case: Case) -> dict[str, bytes]:
    """The fixture with LF, CRLF and (SSE only: NDJSON has no bare-CR form) CR line ends."""
    body = case.body
    variants = {"lf": body, "crlf": body.replace(b"\n", b"\r\n")}
    if case.content_type == SSE:
        variants["cr"] = body.replace(b"\n", b"\r")
    return variants
