"""Micro-benchmark: CPU cost of the stream taps per response chunk (one SSE event per chunk).

    python bench/tap_micro.py [--chunks 200] [--repeat 200]

Prints microseconds per chunk for the OpenAI chat tap with the stdlib ``json`` parser
and with ``orjson`` (the one the taps use), the framer alone, and the other formats'
taps with orjson. The best of several runs is reported: it is the cost without
scheduler noise, which is what a per-chunk budget is about.
"""

from __future__ import annotations

import argparse
import json
import time
from collections.abc import Callable

import orjson

from proxy.stream import openai
from proxy.stream.base import RequestInfo, Tap
from proxy.stream.sse import SSEFramer
from proxy.stream.taps import framing, make_tap

STREAM = RequestInfo(stream=True)


def chat_chunks(n: int) -> list[bytes]:
    def event(delta: dict[str, object], finish: str | None = None) -> bytes:
        chunk = {
            "id": "chatcmpl-9f3b2c7e5d1a4f0b8c6e2d1a0b9c8d7e",
            "object": "chat.completion.chunk",
            "created": 1750000000,
            "model": "meta-llama/Llama-3.1-8B-Instruct",
            "choices": [{"index": 0, "delta": delta, "logprobs": None, "finish_reason": finish}],
        }
        return b"data: " + orjson.dumps(chunk) + b"\n\n"

    body = [event({"role": "assistant", "content": ""})]
    body += [event({"content": f" token{i}"}) for i in range(n - 2)]
    body.append(event({}, "stop"))
    return body


def anthropic_chunks(n: int) -> list[bytes]:
    delta = b'event: content_block_delta\ndata: {"type":"content_block_delta","index":0,"delta":{"type":"text_delta","text":" token"}}\n\n'
    return [delta] * n


def responses_chunks(n: int) -> list[bytes]:
    delta = (
        b'event: response.output_text.delta\ndata: {"type":"response.output_text.delta","sequence_number":4,'
        b'"item_id":"msg_67c9fdcf37fc8190ba82116e33fb28c507b8b0ad4e5eb654","output_index":0,"content_index":0,"delta":" token"}\n\n'
    )
    return [delta] * n


def ollama_chunks(n: int) -> list[bytes]:
    line = b'{"model":"llama3.2","created_at":"2025-05-29T09:35:56.876540Z","message":{"role":"assistant","content":" token"},"done":false}\n'
    return [line] * n


def factory(endpoint: str, content_type: bytes) -> Callable[[], Tap]:
    def make() -> Tap:
        tap = make_tap(endpoint, framing(endpoint, content_type, STREAM))
        assert tap is not None
        return tap

    return make


def per_chunk_us(make: Callable[[], Tap], chunks: list[bytes], repeat: int) -> float:
    best = float("inf")
    for _ in range(repeat):
        tap = make()
        start = time.perf_counter_ns()
        for chunk in chunks:
            tap.feed(chunk)
        tap.close()
        best = min(best, (time.perf_counter_ns() - start) / len(chunks))
    return best / 1000


def framer_us(chunks: list[bytes], repeat: int) -> float:
    best = float("inf")
    for _ in range(repeat):
        framer = SSEFramer()
        start = time.perf_counter_ns()
        for chunk in chunks:
            framer.feed(chunk)
        best = min(best, (time.perf_counter_ns() - start) / len(chunks))
    return best / 1000


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--chunks", type=int, default=200)
    parser.add_argument("--repeat", type=int, default=200)
    args = parser.parse_args()
    n, repeat = args.chunks, args.repeat

    chat = chat_chunks(n)
    make_chat = factory("chat_completions", b"text/event-stream")
    print(f"{n} chunks x {repeat} runs, best run, microseconds per chunk ({len(chat[1])} B chat chunk)")
    print(f"  sse framer only            {framer_us(chat, repeat):6.2f}")
    print(f"  openai chat tap, orjson    {per_chunk_us(make_chat, chat, repeat):6.2f}")
    # The same tap with the stdlib parser swapped in for the comparison.
    setattr(openai, "loads", json.loads)
    try:
        print(f"  openai chat tap, json      {per_chunk_us(make_chat, chat, repeat):6.2f}")
    finally:
        setattr(openai, "loads", orjson.loads)
    print(f"  json.loads alone           {parse_us(json.loads, chat, repeat):6.2f}")
    print(f"  orjson.loads alone         {parse_us(orjson.loads, chat, repeat):6.2f}")
    others: list[tuple[str, str, bytes, list[bytes]]] = [
        ("anthropic messages tap", "messages", b"text/event-stream", anthropic_chunks(n)),
        ("responses tap", "responses", b"text/event-stream", responses_chunks(n)),
        ("ollama chat ndjson tap", "ollama_chat", b"application/x-ndjson", ollama_chunks(n)),
    ]
    for label, endpoint, content_type, chunks in others:
        print(f"  {label:26} {per_chunk_us(factory(endpoint, content_type), chunks, repeat):6.2f}")


def parse_us(loads: Callable[[bytes], object], chunks: list[bytes], repeat: int) -> float:
    payloads = [chunk[6:-2] for chunk in chunks]
    best = float("inf")
    for _ in range(repeat):
        start = time.perf_counter_ns()
        for payload in payloads:
            loads(payload)
        best = min(best, (time.perf_counter_ns() - start) / len(payloads))
    return best / 1000


if __name__ == "__main__":
    main()
