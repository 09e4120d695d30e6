"""Deterministic output text and the simulator's notion of a token.

Output: token ``i`` is one word from a fixed list, chosen by a sequence shuffled from the
seed, with a leading space after the first token ("The quick model ..."). The same seed
gives the same text for every request and every wire format.

Input: the prompt's tokens are its whitespace-separated words, counted over the text a
request carries (message contents, system prompt, instructions, prompt, inputs); a
token-id array counts one token per id. No chat template or special tokens are added.
"""

from __future__ import annotations

import random
from typing import Any

import orjson

_WORDS = (
    "The quick model streams tokens through a proxy that measures every gap between "
    "them while Prometheus scrapes counters and Grafana draws latency panels for "
    "engineers who watch queues grow under load so each request waits its turn before "
    "the server answers with text that nobody reads but everyone times carefully today"
).split()

# A prime cycle length keeps the text from repeating in step with the word list.
_CYCLE = 257
# Where simulated token ids start, clear of the ids real tokenizers reserve.
_FIRST_ID = 1000


class Vocabulary:
    """Per-token text, JSON fragments and ids, precomputed so the hot path only indexes."""

    __slots__ = ("_order", "_texts", "_json", "_ids", "first_json", "first_text")

    def __init__(self, seed: int) -> None:
        rng = random.Random(seed)
        self._order = [rng.randrange(len(_WORDS)) for _ in range(_CYCLE)]
        self._texts = [" " + w for w in _WORDS]
        self._json = [orjson.dumps(t) for t in self._texts]
        self._ids = [str(_FIRST_ID + k).encode() for k in range(len(_WORDS))]
        first = _WORDS[self._order[0]]
        self.first_text = first
        self.first_json = orjson.dumps(first)

    def json(self, i: int) -> bytes:
        """Token ``i``'s text as a JSON string literal, quotes included."""
        if i == 0:
            return self.first_json
        return self._json[self._order[i % _CYCLE]]

    def text(self, i: int) -> str:
        if i == 0:
            return self.first_text
        return self._texts[self._order[i % _CYCLE]]

    def token_id(self, i: int) -> bytes:
        return self._ids[self._order[i % _CYCLE]]

    def joined(self, n: int) -> str:
        """The text of tokens 0..n-1, as one string."""
        return "".join(self.text(i) for i in range(n))


def count_words(value: Any) -> int:
    """Input tokens in a request field: words in text, one per id in token arrays.

    Walks strings, lists and the ``content``/``text`` of objects (chat messages, content
    parts), so roles, names and other metadata do not count.
    """
    if isinstance(value, str):
        return len(value.split())
    if isinstance(value, bool):
        return 0
    if isinstance(value, int):
        return 1
    if isinstance(value, list):
        return sum(count_words(v) for v in value)
    if isinstance(value, dict):
        return count_words(value.get("content")) + count_words(value.get("text"))
    return 0


# Request fields that cap the output length, as the APIs spell them.
_TOP_LEVEL_CAPS = ("max_tokens", "max_completion_tokens", "max_output_tokens", "n_predict", "max_new_tokens",
                   "num_predict")


def output_cap(body: dict[str, Any]) -> int | None:
    """The smallest output cap the request sets, or None.

    Covers OpenAI (``max_tokens``, ``max_completion_tokens``, ``max_output_tokens``),
    Anthropic (``max_tokens``), Ollama (``options.num_predict``), TGI
    (``parameters.max_new_tokens``) and llama.cpp (``n_predict``). Negative values mean
    "no limit" in Ollama and llama.cpp, so they are ignored, as are non-integers.
    """
    caps: list[int] = []
    sources = [body]
    for nested in ("options", "parameters"):
        inner = body.get(nested)
        if isinstance(inner, dict):
            sources.append(inner)
    for source in sources:
        for key in _TOP_LEVEL_CAPS:
            value = source.get(key)
            if isinstance(value, int) and not isinstance(value, bool) and value >= 0:
                caps.append(value)
    return min(caps) if caps else None
