"""A raw SSE client for the tests that must see llama-server's stream as it is sent.

The openai SDK hides exactly the details some tests check (role-only chunks, extra
fields, when each chunk arrived), so those tests read the bytes themselves.
"""

from __future__ import annotations

import json
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import httpx

# Deterministic and comparable: greedy sampling with a fixed seed, and no prompt cache,
# so every request evaluates its whole prompt (llamacpp:prompt_tokens_total counts
# only evaluated tokens, and timings.prompt_ms then measures the whole prompt).
GREEDY: dict[str, Any] = {"temperature": 0, "seed": 42, "cache_prompt": False}

CHAT_MESSAGES = [{"role": "user", "content": "Write a short story about a lighthouse keeper."}]
COMPLETION_PROMPT = "The lighthouse keeper climbed the stairs and"


def chat_body(max_tokens: int, **extra: Any) -> dict[str, Any]:
    return {"model": "smollm2", "messages": CHAT_MESSAGES, "max_tokens": max_tokens, "stream": True, **GREEDY, **extra}


def completion_body(max_tokens: int, **extra: Any) -> dict[str, Any]:
    return {
        "model": "smollm2",
        "prompt": COMPLETION_PROMPT,
        "max_tokens": max_tokens,
        "stream": True,
        **GREEDY,
        **extra,
    }


def text_of(chunk: dict[str, Any]) -> str:
    """Generated text in one chat or completions chunk ("" for role-only and final chunks)."""
    choices = chunk.get("choices") or []
    if not choices:
        return ""
    choice = choices[0]
    if "delta" in choice:
        return str(choice["delta"].get("content") or "")
    return str(choice.get("text") or "")


@dataclass
class StreamResult:
    chunks: list[dict[str, Any]] = field(default_factory=list)
    t_sent: float = 0.0
    token_times: list[float] = field(default_factory=list)
    done: bool = False

    @property
    def text(self) -> str:
        return "".join(text_of(c) for c in self.chunks)

    @property
    def ttft(self) -> float:
        return self.token_times[0] - self.t_sent

    @property
    def generation_time(self) -> float:
        return self.token_times[-1] - self.token_times[0]

    @property
    def usage(self) -> dict[str, Any] | None:
        found = [c["usage"] for c in self.chunks if c.get("usage")]
        return found[-1] if found else None

    @property
    def timings(self) -> dict[str, Any] | None:
        found = [c["timings"] for c in self.chunks if c.get("timings")]
        return found[-1] if found else None


def stream(base_url: str, path: str, body: dict[str, Any], stop: Callable[[int], bool] | None = None) -> StreamResult:
    """POST a streaming request and read its SSE events, timing each token event.

    ``stop`` is called with the number of token events so far; when it returns True
    the client closes the connection, as a user pressing stop would.
    """
    result = StreamResult()
    with httpx.Client(timeout=httpx.Timeout(60.0)) as client:
        result.t_sent = time.perf_counter()
        with client.stream("POST", base_url + path, json=body) as response:
            response.raise_for_status()
            for line in response.iter_lines():
                if not line.startswith("data:"):
                    continue
                data = line[5:].strip()
                if data == "[DONE]":
                    result.done = True
                    break
                chunk = json.loads(data)
                result.chunks.append(chunk)
                if text_of(chunk):
                    result.token_times.append(time.perf_counter())
                    if stop is not None and stop(len(result.token_times)):
                        break
    return result
