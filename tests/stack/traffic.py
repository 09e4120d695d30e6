"""Mixed client traffic through the proxy, so every serving series gets samples.

Streams with and without usage (exact and estimated counts), non-streaming calls,
Ollama and Anthropic formats, a length-capped stream, a client that leaves mid-stream
(cancelled) and an oversized body (rejected). The simulator adds HTTP 500s itself.
"""

from __future__ import annotations

import asyncio
import time
from collections import Counter
from collections.abc import Awaitable, Callable

import httpx

Kind = Callable[[httpx.AsyncClient], Awaitable[int]]
CHAT = [{"role": "user", "content": "How fast is this?"}]


async def _stream(client: httpx.AsyncClient, path: str, body: dict[str, object]) -> int:
    async with client.stream("POST", path, json=body) as response:
        async for _ in response.aiter_raw():
            pass
        return response.status_code


async def chat_usage(client: httpx.AsyncClient) -> int:
    return await _stream(client, "/v1/chat/completions", {
        "model": "alpha", "messages": CHAT, "stream": True, "stream_options": {"include_usage": True}})


async def chat_estimated(client: httpx.AsyncClient) -> int:
    return await _stream(client, "/v1/chat/completions", {"model": "beta", "messages": CHAT, "stream": True})


async def chat_length(client: httpx.AsyncClient) -> int:
    return await _stream(client, "/v1/chat/completions", {
        "model": "alpha", "messages": CHAT, "stream": True, "max_tokens": 3})


async def chat_json_mode(client: httpx.AsyncClient) -> int:
    # Asks for JSON (response checks, DESIGN.md section 15): the simulator's words are not
    # JSON, so the json check has answers to count (as failures).
    return await _stream(client, "/v1/chat/completions", {
        "model": "beta", "messages": CHAT, "stream": True, "response_format": {"type": "json_object"}})


async def completion_json(client: httpx.AsyncClient) -> int:
    response = await client.post("/v1/completions", json={"model": "alpha", "prompt": "Once upon a time"})
    return response.status_code


async def ollama_chat(client: httpx.AsyncClient) -> int:
    return await _stream(client, "/api/chat", {"model": "beta", "messages": CHAT, "stream": True})


async def anthropic_messages(client: httpx.AsyncClient) -> int:
    return await _stream(client, "/v1/messages", {
        "model": "alpha", "max_tokens": 64, "messages": CHAT, "stream": True})


async def cancelled(client: httpx.AsyncClient) -> int:
    async with client.stream("POST", "/v1/chat/completions", json={
            "model": "alpha", "messages": CHAT, "stream": True}) as response:
        if response.status_code != 200:
            return response.status_code  # the simulator's injected 500: nothing to leave
        async for _ in response.aiter_raw():
            break  # leave after the first bytes: the proxy records outcome=cancelled
        return 499


async def rejected(client: httpx.AsyncClient) -> int:
    response = await client.post("/v1/chat/completions", json={
        "model": "alpha", "messages": [{"role": "user", "content": "x" * 100_000}]})
    return response.status_code


KINDS: tuple[Kind, ...] = (chat_usage, chat_estimated, chat_length, completion_json, ollama_chat,
                           anthropic_messages, chat_usage, cancelled, rejected, chat_json_mode)


async def _worker(client: httpx.AsyncClient, start: int, deadline: float, statuses: Counter[int]) -> None:
    i = start
    while time.monotonic() < deadline:
        statuses[await KINDS[i % len(KINDS)](client)] += 1
        i += 1


async def _drive(url: str, seconds: float, concurrency: int) -> Counter[int]:
    statuses: Counter[int] = Counter()
    deadline = time.monotonic() + seconds
    limits = httpx.Limits(max_connections=concurrency)
    async with httpx.AsyncClient(base_url=url, timeout=10, limits=limits) as client:
        await asyncio.gather(*(_worker(client, i, deadline, statuses) for i in range(concurrency)))
    return statuses


def drive(url: str, seconds: float, concurrency: int = 6) -> Counter[int]:
    """Sends the mix for about ``seconds``; returns how many answers had each status
    (499 for the requests the client itself abandoned)."""
    return asyncio.run(_drive(url, seconds, concurrency))
