"""Recorded responses (tests/stream/fixtures, written from each format's public docs)
and the summaries a tap must produce from them.

The ``*_cached`` llama.cpp fixtures were recorded from the llama-server this repository
builds (llama.cpp b1-0c1e570, vendored by llama-cpp-python 0.3.36; scripts/llama-server.sh)
answering the same prompt a second time; the /completion body's ``generation_settings``
is trimmed. Phases are seconds as the server reported them, divided exactly as the taps do.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path

from proxy.stream.base import RequestInfo, StreamSummary, Tap
from proxy.stream.taps import framing, make_tap, read_headers

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
    # Response headers the tap is given before the body (TGI's timing headers).
    headers: tuple[tuple[bytes, bytes], ...] = ()

    @property
    def body(self) -> bytes:
        return (FIXTURES / self.fixture).read_bytes()

    def tap(self) -> Tap:
        tap = make_tap(self.endpoint, framing(self.endpoint, self.content_type, RequestInfo(stream=self.stream)))
        assert tap is not None
        read_headers(self.endpoint, self.headers, tap.summary)
        return tap


def summary(model: str | None, inp: int | None, out: int | None, events: int, finish: str | None, *,
            cached: int | None = None, reasoning: int | None = None,
            phases: dict[str, float] | None = None) -> StreamSummary:
    return StreamSummary(model=model, input_tokens=inp, output_tokens=out, token_events=events, finish_reason=finish,
                         cached_input_tokens=cached, reasoning_output_tokens=reasoning, phases=phases)


def ms(prefill: float, decode: float) -> dict[str, float]:
    """llama.cpp's ``timings``: prompt_ms and predicted_ms, in seconds."""
    return {"prefill": prefill / 1e3, "decode": decode / 1e3}


def ns(load: int, prefill: int, decode: int) -> dict[str, float]:
    """Ollama's durations, in seconds."""
    return {"load": load / 1e9, "prefill": prefill / 1e9, "decode": decode / 1e9}


# TGI 3.x /generate answers, as router/src/server.rs (generate_internal) writes the headers:
# whole milliseconds, the counts as integers.
TGI_HEADERS = ((b"x-compute-type", b"gpu+optimized"), (b"x-compute-time", b"0.4731"),
               (b"x-compute-characters", b"21"), (b"x-total-time", b"473"), (b"X-Validation-Time", b"1"),
               (b"X-Queue-Time", b"312"), (b"x-inference-time", b"160"), (b"x-time-per-token", b"20"),
               (b"x-prompt-tokens", b"6"), (b"x-generated-tokens", b"8"))


STREAMS = [
    Case("openai_chat.sse", "chat_completions", SSE,
         summary("gpt-4o-mini-2024-07-18", 9, 9, 7, "stop", cached=0, reasoning=0)),
    Case("openai_chat_tools.sse", "chat_completions", SSE, summary("gpt-4.1-2025-04-14", None, None, 7, "tool_calls")),
    # OpenAI's chat streams no reasoning text: its tokens show only in the usage details.
    Case("openai_chat_reasoning.sse", "chat_completions", SSE,
         summary("o4-mini-2025-04-16", 1187, 211, 3, "stop", cached=1024, reasoning=192)),
    Case("llamacpp_oai_chat.sse", "chat_completions", SSE,
         summary("Qwen3-0.6B-Q8_0.gguf", 12, 16, 5, "length", phases=ms(21.07, 160.2))),
    Case("llamacpp_oai_chat_cached.sse", "chat_completions", SSE,
         summary("smollm2", 44, 3, 3, "length", cached=43, phases=ms(6.114, 12.663))),
    Case("openai_completions.sse", "completions", SSE, summary("meta-llama/Llama-3.1-8B-Instruct", 6, 5, 5, "length")),
    Case("responses.sse", "responses", SSE, summary("gpt-4.1-2025-04-14", 37, 11, 3, "stop", cached=0, reasoning=0)),
    Case("responses_tools.sse", "responses", SSE, summary("o4-mini-2025-04-16", 291, 87, 5, "tool_calls", reasoning=64)),
    Case("anthropic.sse", "messages", SSE, summary("claude-sonnet-4-5-20250929", 572, 89, 6, "tool_calls", cached=100)),
    # 21 uncached + 188 written to the cache + 2048 read from it: all input, 2048 cached.
    Case("anthropic_cache.sse", "messages", SSE, summary("claude-sonnet-4-5-20250929", 2257, 12, 3, "stop", cached=2048)),
    Case("ollama_chat.ndjson", "ollama_chat", NDJSON,
         summary("qwen3:0.6b", 26, 282, 6, "stop", phases=ns(1334875, 342546000, 4535599000))),
    # A cold start: 3.8 s of the 4.1 s went to loading the model.
    Case("ollama_chat_cold.ndjson", "ollama_chat", NDJSON,
         summary("llama3.2", 31, 4, 3, "stop", phases=ns(3812417208, 161249000, 98301000))),
    # Ollama's documented generate example, also a cold load (6.3 s).
    Case("ollama_generate.ndjson", "ollama_generate", NDJSON,
         summary("llama3.2", 26, 4, 4, "length", phases=ns(6338219291, 130079000, 4232710000))),
    Case("tgi_generate_stream.sse", "tgi_generate", SSE, summary(None, 7, 5, 4, "stop")),
    Case("llamacpp_completion.sse", "llamacpp_completion", SSE,
         summary("gemma-3-1b-it-Q4_K_M.gguf", 6, 4, 4, "length", phases=ms(12.1, 30.5))),
]

BODIES = [
    Case("openai_chat.json", "chat_completions", JSON,
         summary("gpt-4.1-2025-04-14", 19, 10, 0, "stop", cached=0, reasoning=0), stream=False),
    Case("openai_chat_reasoning.json", "chat_completions", JSON,
         summary("o4-mini-2025-04-16", 2006, 300, 0, "stop", cached=1920, reasoning=256), stream=False),
    Case("llamacpp_oai_chat_cached.json", "chat_completions", JSON,
         summary("smollm2", 44, 5, 0, "length", cached=43, phases=ms(6.119, 24.044)), stream=False),
    Case("responses.json", "responses", JSON,
         summary("gpt-4o-2024-08-06", 36, 16, 0, "length", cached=0, reasoning=0), stream=False),
    Case("responses_reasoning.json", "responses", JSON,
         summary("o4-mini-2025-04-16", 1531, 542, 0, "stop", cached=1408, reasoning=512), stream=False),
    Case("anthropic.json", "messages", JSON, summary("claude-sonnet-4-5-20250929", 2100, 503, 0, "length", cached=0),
         stream=False),
    Case("ollama_chat.json", "ollama_chat", JSON,
         summary("llama3.2", 26, 298, 0, "stop", phases=ns(2154458, 383809000, 4799921000)), stream=False),
    Case("tgi_generate.json", "tgi_generate", JSON, summary(None, 6, 8, 0, "length"), stream=False),
    # No details asked for: the counts come from the headers alone.
    Case("tgi_generate_plain.json", "tgi_generate", JSON, summary(None, 6, 8, 0, None, phases={"queue": 312 / 1e3}),
         stream=False, headers=TGI_HEADERS),
    Case("llamacpp_completion.json", "llamacpp_completion", JSON,
         summary("gemma-3-1b-it-Q4_K_M.gguf", 6, 7, 0, "stop", phases=ms(12.1, 53.0)), stream=False),
    # /completion has no usage: the cached count is timings.cache_n.
    Case("llamacpp_completion_cached.json", "llamacpp_completion", JSON,
         summary("smollm2", 5, 3, 0, "length", cached=4, phases=ms(15.11, 14.481)), stream=False),
    Case("embeddings_openai.json", "embeddings", JSON, summary("text-embedding-3-small", 8, None, 0, None), stream=False),
    Case("ollama_embed.json", "embeddings", JSON,
         summary("all-minilm", 8, None, 0, None, phases={"load": 1019500 / 1e9}), stream=False),
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
