"""Embeddings: ``/v1/embeddings`` (OpenAI), ``/api/embed`` and ``/api/embeddings`` (Ollama).

The body is one JSON object, but nearly all of it is vectors: a batch easily runs to
megabytes, and parsing 1 MB of floats takes ~3 ms with orjson, on the event loop that
carries every other stream. What a meter needs (``model`` and the prompt count,
``usage.prompt_tokens`` or ``prompt_eval_count``) sits before or after the vectors,
so the tap keeps only the first and last few KiB and reads those fields from them.
There are no token events and no output tokens; the legacy ``/api/embeddings`` states
no counts at all. ``/api/embed`` also states ``load_duration`` (ns): the ``load`` phase.
"""

from __future__ import annotations

import re

from orjson import loads

from proxy.stream.base import StreamSummary
from proxy.stream.fields import set_input, set_model, set_phase

KEEP = 4096
_MODEL = re.compile(rb'"model"\s*:\s*"((?:[^"\\]|\\.){1,1024})"')
# Signs and more digits than any count or time has are matched, for set_input and
# set_phase to reject as impossible rather than miss.
_PROMPT = re.compile(rb'"(?:prompt_tokens|prompt_eval_count)"\s*:\s*(-?\d{1,24})\b')
_LOAD = re.compile(rb'"load_duration"\s*:\s*(-?\d{1,24})\b')


class EmbeddingsTap:
    __slots__ = ("summary", "_head", "_tail", "_size", "_keep")

    def __init__(self, keep: int = KEEP) -> None:
        self.summary = StreamSummary()
        self._head = bytearray()
        self._tail = b""
        self._size = 0
        self._keep = keep

    def feed(self, chunk: bytes) -> int:
        keep = self._keep
        if self._size < keep:
            self._head += chunk[: keep - self._size]
        self._size += len(chunk)
        self._tail = chunk[-keep:] if len(chunk) >= keep else (self._tail + chunk)[-keep:]
        return 0

    def close(self) -> int:
        if not self._size:
            return 0
        head, tail = bytes(self._head), self._tail
        self._head.clear()
        self._size = 0
        summary = self.summary
        try:
            if not head.lstrip().startswith(b"{"):
                summary.parse_errors += 1
                return 0
            model = _MODEL.search(head) or _MODEL.search(tail)
            if model:
                set_model(summary, loads(b'"' + model.group(1) + b'"'))
            prompt = _PROMPT.search(tail) or _PROMPT.search(head)
            if prompt:
                set_input(summary, int(prompt.group(1)))
            load = _LOAD.search(tail) or _LOAD.search(head)
            if load:
                set_phase(summary, "load", int(load.group(1)), 1e9)
        except Exception:
            summary.parse_errors += 1
        return 0
