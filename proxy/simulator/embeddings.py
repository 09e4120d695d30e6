"""Embeddings: OpenAI ``/v1/embeddings``, Ollama ``/api/embed`` and ``/api/embeddings``.

Vectors are unit-length, ``dimensions`` long (default 16), and depend only on the
input text and the seed. OpenAI's ``encoding_format: "base64"`` (what the official SDK
asks for by default) is honoured: little-endian float32, base64-encoded. The answer is
ready one time-to-first-token after the request starts (the prefill).
"""

from __future__ import annotations

import base64
import random
import struct
import zlib
from typing import Any

import orjson

from proxy.simulator.job import Job

DEFAULT_DIMENSIONS = 16
MAX_DIMENSIONS = 8192


def inputs(value: Any) -> list[Any]:
    """The separate inputs of an embeddings request (a token-id array is one input)."""
    if isinstance(value, list) and value and not all(isinstance(v, int) for v in value):
        return value
    return [value]


def dimensions(body: dict[str, Any]) -> int:
    value = body.get("dimensions")
    if isinstance(value, int) and not isinstance(value, bool) and 0 < value <= MAX_DIMENSIONS:
        return value
    return DEFAULT_DIMENSIONS


def vector(item: Any, seed: int, size: int) -> list[float]:
    rng = random.Random(zlib.crc32(orjson.dumps(item)) ^ seed)
    raw = [rng.gauss(0.0, 1.0) for _ in range(size)]
    norm = sum(v * v for v in raw) ** 0.5 or 1.0
    return [v / norm for v in raw]


class _Embeddings:
    __slots__ = ("job", "seed")

    stream_content_type = b"application/json"

    def __init__(self, job: Job, seed: int) -> None:
        self.job = job
        self.seed = seed

    def head(self) -> bytes:
        return b""

    def token(self, i: int) -> bytes:
        return b""

    def tail(self, now: float) -> bytes:
        return b""


class OpenAIEmbeddings(_Embeddings):
    __slots__ = ()

    def whole(self, now: float) -> bytes:
        job = self.job
        size = dimensions(job.body)
        as_base64 = job.body.get("encoding_format") == "base64"
        data = []
        for index, item in enumerate(inputs(job.body.get("input"))):
            vec = vector(item, self.seed, size)
            embedding: Any = base64.b64encode(struct.pack(f"<{size}f", *vec)).decode() if as_base64 else vec
            data.append({"object": "embedding", "index": index, "embedding": embedding})
        return orjson.dumps({"object": "list", "data": data, "model": job.model,
                             "usage": {"prompt_tokens": job.input_tokens, "total_tokens": job.input_tokens}})


class OllamaEmbed(_Embeddings):
    """``/api/embed``: ``input`` is a string or a list of strings."""

    __slots__ = ()

    def whole(self, now: float) -> bytes:
        job = self.job
        size = dimensions(job.body)
        vectors = [vector(item, self.seed, size) for item in inputs(job.body.get("input"))]
        return orjson.dumps({"model": job.model, "embeddings": vectors,
                             "total_duration": max(0, int((now - job.t_arrival) * 1e9)),
                             "load_duration": max(0, round(job.load * 1e9)),
                             "prompt_eval_count": job.input_tokens})


class OllamaEmbeddings(_Embeddings):
    """``/api/embeddings`` (the older endpoint): one ``prompt``, one ``embedding``."""

    __slots__ = ()

    def whole(self, now: float) -> bytes:
        return orjson.dumps({"embedding": vector(self.job.body.get("prompt"), self.seed,
                                                  dimensions(self.job.body))})
