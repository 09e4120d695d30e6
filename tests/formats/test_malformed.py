"""Unknown and half-valid events from the upstream: relayed byte for byte, counted as parse
errors where the tap could not read them, and never in the way of the rest's timing."""

from __future__ import annotations

from typing import Any

import anthropic
import httpx
import ollama
import orjson
import pytest
from anthropic.types import MessageParam

from tests.formats import streams
from tests.formats.conftest import Route, Stage
from tests.formats.expect import TBT, TTFT, check_counts, check_stream, check_stream_timing
from tests.support.metrics import Delta, measured
from tests.formats.scripted import NDJSON, SSE, Step, paced
from tests.formats.streams import MESSAGE_START, OVERLOADED, PING, named, text
from tests.support.sdk import closing

ASK: MessageParam = {"role": "user", "content": "hi"}


def _raw(scripted: Stage, steps: list[Step], path: str, content_type: bytes = SSE) -> tuple[Route, Delta]:
    """Serve ``steps``, fetch ``path`` through the proxy with httpx, check the bytes."""
    route = scripted.play(steps, content_type)
    relayed, d = measured(route.proxied, lambda: httpx.post(route.proxied + path, json={}, timeout=10).content)
    assert relayed == scripted.app.body
    return route, d


def _until_error(items: Any) -> tuple[list[Any], str | None]:
    """What a client got before it raised, and what it raised (None if it did not)."""
    got: list[Any] = []
    try:
        for item in items:
            got.append(item.model_dump())
    except (anthropic.APIError, ollama.ResponseError, ValueError) as exc:
        return got, type(exc).__name__
    return got, None


def test_truncated_json_lines(scripted: Stage) -> None:
    cut = b'data: {"id":"chatcmpl-9xY","object":"chat.completion.chunk","choices":[{"index":0,"delta":{"content":"9.\n\n'
    body = streams.CHAT_REASONING.body
    stream = streams.CHAT_REASONING
    # One cut line before the first token, one among the tokens, each its own write.
    steps = paced(stream.head, (cut, *body[:4], cut, *body[4:]), stream.tail, TTFT, TBT)
    _, d = _raw(scripted, steps, "/v1/chat/completions")
    check_stream(d, "chat_completions", "deepseek-r1", inputs=17, outputs=31, reason="stop", parse_errors=2,
                 first=TTFT + TBT, last=TTFT + 9 * TBT)


def _anthropic_events(base: str) -> tuple[list[Any], str | None]:
    client = closing(anthropic.Anthropic(base_url=base, api_key="k", max_retries=0, timeout=10))
    return _until_error(client.messages.create(model="m", max_tokens=64, messages=[ASK], stream=True))


_TEXT_HEAD = (MESSAGE_START, named("content_block_start", {"index": 0, "content_block": {"type": "text", "text": ""}}),
              PING)
_WORDS = tuple(text(0, w) for w in ("Hello", ",", " world", "!"))


def test_unknown_event_types_pass_untouched(scripted: Stage) -> None:
    # A type this proxy has never heard of, alone and riding with a token; Anthropic's
    # versioning policy says clients must ignore such events, and so does the tap.
    novel = named("message_progress", {"progress": {"stage": "decode"}})
    body = (_WORDS[0], _WORDS[1] + novel, novel, _WORDS[2], _WORDS[3])
    tail = (named("content_block_stop", {"index": 0}),
            named("message_delta", {"delta": {"stop_reason": "end_turn", "stop_sequence": None},
                                    "usage": {"output_tokens": 4}}), named("message_stop", {}))
    route, d = _raw(scripted, paced(_TEXT_HEAD, body, tail, TTFT, TBT), "/v1/messages")
    check_stream(d, "messages", "claude-sonnet-4-5", inputs=25, outputs=4, reason="stop", events=4,
                 last=TTFT + 4 * TBT)
    direct, relayed = _anthropic_events(route.direct), _anthropic_events(route.proxied)
    assert relayed == direct and relayed[1] is None


def test_error_event_mid_stream(scripted: Stage) -> None:
    route, d = _raw(scripted, paced(_TEXT_HEAD, _WORDS, (OVERLOADED,), TTFT, TBT), "/v1/messages")
    labels = {"endpoint": "messages", "model": "claude-sonnet-4-5"}
    assert d.get("infermeter_finish_reasons_total", **labels, reason="error") == 1
    assert d.get("infermeter_tokens_total", **labels, type="input") == 25
    assert d.get("infermeter_stream_parse_errors_total", endpoint="messages") == 0
    # An error event is the upstream's answer, relayed whole: the request completed.
    assert d.get("infermeter_requests_total", **labels, code="200", outcome="completed") == 1
    check_stream_timing(d, "messages", "claude-sonnet-4-5", events=4)
    direct, relayed = _anthropic_events(route.direct), _anthropic_events(route.proxied)
    assert relayed == direct and relayed[1] == "APIStatusError" and len(relayed[0]) == 6


def test_error_event_mid_stream_counts_the_tokens_sent(scripted: Stage) -> None:
    _, d = _raw(scripted, paced(_TEXT_HEAD, _WORDS, (OVERLOADED,), TTFT, TBT), "/v1/messages")
    assert d.get("infermeter_tokens_total", endpoint="messages", type="output") == 4
    assert d.get("infermeter_token_counts_estimated_total", endpoint="messages") == 1
    assert d.get("infermeter_time_per_output_token_seconds_count", endpoint="messages") == 1


def test_responses_unknown_delta_and_error_event(scripted: Stage) -> None:
    def delta(n: int, word: str) -> bytes:
        return named("response.output_text.delta", {"sequence_number": n, "item_id": "msg_1", "output_index": 0,
                                                     "content_index": 0, "delta": word})

    created = named("response.created", {"sequence_number": 0, "response": {
        "id": "resp_1", "object": "response", "status": "in_progress", "model": "gpt-4.1", "output": []}})
    # An unknown event that even has a ``delta``: not output the tap knows of, not a token.
    novel = named("response.output_widget.delta", {"sequence_number": 3, "delta": "<svg>"})
    body = (delta(1, "Hi"), delta(2, " there"), novel, delta(4, ","), delta(5, " friend"))
    error = named("error", {"code": "server_error", "message": "The server had an error", "param": None,
                            "sequence_number": 6})
    _, d = _raw(scripted, paced((created,), body, (error,), TTFT, TBT), "/v1/responses")
    check_counts(d, "responses", "gpt-4.1", inputs=None, outputs=4, reason="error", stream=True, estimated=True)
    check_stream_timing(d, "responses", "gpt-4.1", events=4, last=TTFT + 4 * TBT)


def test_ollama_truncated_line_and_error_line(scripted: Stage) -> None:
    def line(word: str) -> bytes:
        return (b'{"model":"llama3.2","created_at":"2024-07-22T20:33:28.123648Z","message":{"role":"assistant",'
                b'"content":"' + word.encode() + b'"},"done":false}\n')

    words = [line(w) for w in ("The", " sky", " is", " blue", " because", " of", " Rayleigh", " scattering")]
    cut = b'{"model":"llama3.2","created_at":"2024-07-22T20:33:28.2Z","message":{"role":"assis\n'
    error = b'{"error":"an error was encountered while running the model: unexpected EOF"}\n'
    steps = paced((), (*words[:4], cut, *words[4:]), (error,), TTFT, TBT)
    route, d = _raw(scripted, steps, "/api/chat", NDJSON)
    # No done line: no counts from the server, output from the 8 token events.
    check_stream(d, "ollama_chat", "llama3.2", inputs=None, outputs=8, reason="error", estimated=True,
                 parse_errors=1, last=TTFT + 8 * TBT)

    def chat(base: str) -> tuple[list[Any], str | None]:
        return _until_error(closing(ollama.Client(host=base, timeout=10)).chat(model="m", messages=[ASK], stream=True))

    direct, relayed = chat(route.direct), chat(route.proxied)
    # The client stops at the cut line, as it does talking to the server directly.
    assert relayed == direct and len(relayed[0]) == 4 and relayed[1] == "JSONDecodeError"


def test_llamacpp_error_line(scripted: Stage) -> None:
    def token(word: str) -> bytes:
        return b'data: {"index":0,"content":"' + word.encode() + b'","tokens":[1],"stop":false,"id_slot":0}\n\n'

    # llama.cpp's server writes errors mid-stream as an ``error:`` field, not ``data:``.
    error = b'error: {"code":500,"message":"Context size has been exceeded.","type":"server_error"}\n\n'
    _, d = _raw(scripted, paced((), tuple(token(w) for w in ("a", " b", " c")), (error,), TTFT, TBT), "/completion")
    check_stream(d, "llamacpp_completion", "unknown", inputs=None, outputs=3, reason="error", estimated=True,
                 events=3)


def test_tgi_truncated_event_and_error(scripted: Stage) -> None:
    def token(i: int, word: str) -> bytes:
        return (b'data:{"index":' + str(i).encode() + b',"token":{"id":' + str(100 + i).encode() + b',"text":"'
                + word.encode() + b'","logprob":-0.3,"special":false},"generated_text":null,"details":null}\n\n')

    tokens = [token(i + 1, w) for i, w in enumerate(("What", " is", " Deep", " Learning"))]
    cut = b'data:{"index":3,"token":{"id":103,"text":" Dee\n\n'
    error = b'data:{"error":"Request failed during generation: Server error: CUDA out of memory","error_type":"generation"}\n\n'
    steps = paced((), (*tokens[:2], cut, *tokens[2:]), (error,), TTFT, TBT)
    _, d = _raw(scripted, steps, "/generate_stream")
    check_stream(d, "tgi_generate", "unknown", inputs=None, outputs=4, reason="error", estimated=True, events=4,
                 parse_errors=1, last=TTFT + 4 * TBT)


def test_impossible_usage_and_timings_are_parse_errors_not_metrics(scripted: Stage) -> None:
    # llama-server's OpenAI stream shape (timings on the finish chunk, then the usage chunk)
    # with numbers no server could mean: 2**64-1 prompt tokens, a prefill of 1e308 ms, a
    # negative decode. The bytes pass untouched; none of those numbers reaches /metrics.
    def chunk(**fields: Any) -> bytes:
        return b"data: " + orjson.dumps({"id": "c1", "object": "chat.completion.chunk", "model": "impossible",
                                         **fields}) + b"\n\n"

    words = tuple(chunk(choices=[{"index": 0, "delta": {"content": w}, "finish_reason": None}]) for w in ("a", "b"))
    finish = chunk(choices=[{"index": 0, "delta": {}, "finish_reason": "stop"}],
                   timings={"prompt_ms": 1e308, "predicted_ms": -1.0, "cache_n": 9})
    usage = chunk(choices=[], usage={"prompt_tokens": 2**64 - 1, "completion_tokens": 2,
                                     "prompt_tokens_details": {"cached_tokens": 7}})
    _, d = _raw(scripted, paced((), words, (finish, usage, b"data: [DONE]\n\n"), TTFT, TBT), "/v1/chat/completions")
    check_stream(d, "chat_completions", "impossible", inputs=None, outputs=2, reason="stop", events=2, parse_errors=3)
    labels = {"endpoint": "chat_completions", "model": "impossible"}
    assert d.get("infermeter_cached_input_tokens_total", **labels) == 0, "cached with no possible input to hold it to"
    assert d.get("infermeter_upstream_phase_seconds_count", **labels) == 0
