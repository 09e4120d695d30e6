"""What a server remembers between requests: the models it holds loaded (Ollama's cold
starts) and the prompts it has cached (every engine's prefix cache).

Both are off-by-default knobs of the schedule's shape, not of its timing: with
``load_time`` 0 no request ever waits for a load, and a cached prompt is reported
(``cached_tokens``, ``cache_n``) without shortening the prefill, so a test's TTFT is the
one it set whatever ran before it.
"""

from __future__ import annotations

import hashlib
from collections import OrderedDict
from typing import Any

import orjson

# The request fields that make up a prompt, across the simulated APIs.
PROMPT_FIELDS = ("messages", "prompt", "input", "inputs", "system", "instructions")
CACHED_PROMPTS = 1024


class Residency:
    """Models loaded in memory, as Ollama keeps them.

    A model loads on its first request, taking ``load_time`` seconds, and stays loaded
    until ``keep_alive`` seconds after a request last used it; the next request after
    that loads it again. Requests that arrive while it loads wait for the same load.
    """

    def __init__(self, load_time: float, keep_alive: float) -> None:
        self.load_time = load_time
        self.keep_alive = keep_alive
        self._ready: dict[str, float] = {}  # model -> when its (latest) load completes
        self._expires: dict[str, float] = {}  # model -> when it unloads unless used again

    def acquire(self, model: str, now: float) -> float:
        """A request for ``model`` starts at ``now``: the seconds it waits for the model to load."""
        if not self.load_time:
            return 0.0
        expires = self._expires.get(model)
        if expires is None or now >= expires:
            self._ready[model] = now + self.load_time
        ready = self._ready[model]
        self._expires[model] = max(ready, now) + self.keep_alive
        return max(0.0, ready - now)

    def release(self, model: str, now: float) -> None:
        """A request for ``model`` ended at ``now``: the keep-alive counts from here."""
        if self.load_time and model in self._expires:
            self._expires[model] = max(self._expires[model], now + self.keep_alive)

    def loaded(self, now: float) -> dict[str, float]:
        """The models loaded at ``now`` (loading ones included), each with when it unloads."""
        return {model: expires for model, expires in self._expires.items() if now < expires}


class PromptCache:
    """The prompts seen lately, per model: a bounded LRU of prompt digests.

    A prompt seen before (same model, same prompt fields) is served whole from the
    cache, as a repeated prompt hits a real engine's prefix cache.
    """

    def __init__(self, capacity: int = CACHED_PROMPTS) -> None:
        self.capacity = capacity
        self._seen: OrderedDict[bytes, None] = OrderedDict()

    def lookup(self, model: str, body: dict[str, Any], tokens: int) -> int:
        """The prompt tokens served from the cache (``tokens`` or 0); the prompt is cached from now on."""
        prompt = {name: body[name] for name in PROMPT_FIELDS if name in body}
        digest = hashlib.blake2b(orjson.dumps([model, prompt], option=orjson.OPT_SORT_KEYS), digest_size=16).digest()
        seen = self._seen
        if digest in seen:
            seen.move_to_end(digest)
            return tokens
        seen[digest] = None
        if len(seen) > self.capacity:
            seen.popitem(last=False)
        return 0
