"""The simulated server's settings: timing, output length, errors, concurrency."""

from __future__ import annotations

import math
from dataclasses import dataclass


@dataclass(frozen=True)
class SimConfig:
    """How the simulated LLM server behaves; every request may override timing by header.

    ``ttft``: seconds from a request's start (arrival, or leaving the queue) to its first
    token. ``tbt``: seconds between tokens. Both 0 means flat out: no sleeping at all.
    ``jitter``: each gap is multiplied by uniform(1 - jitter, 1 + jitter), seeded.
    ``max_concurrency``: requests generated at once (0: no limit); the rest queue FIFO
    and their time to first token includes the wait, like a real server's batch slots.
    ``error_rate``: fraction of requests answered 500, drawn from the seeded generator.
    ``load_time``: seconds an Ollama route's model takes to load when cold (its first
    request, or the first after ``keep_alive`` idle seconds): the request really waits
    that long and reports it as ``load_duration``. 0 (the default): always loaded.
    ``gc_freeze``: after start-up, ``gc.freeze()`` the objects alive then, so full
    collections stop pausing every stream (see ``GcPolicy`` in app.py).
    ``output_text``: every answer says exactly this (a judge that always gives one verdict);
    a request's ``x-sim-output`` header does the same for that request.
    """

    ttft: float = 0.2
    tbt: float = 0.02
    output_tokens: int = 64
    jitter: float = 0.0
    seed: int = 0
    model: str = "infermeter-sim"
    max_concurrency: int = 0
    error_rate: float = 0.0
    load_time: float = 0.0
    keep_alive: float = 300.0
    gc_freeze: bool = True
    # Every answer's text, fixed (scripted.py); None: the seeded words.
    output_text: str | None = None

    def __post_init__(self) -> None:
        for name in ("ttft", "tbt", "load_time", "keep_alive"):
            value = getattr(self, name)
            if isinstance(value, bool) or not isinstance(value, (int, float)) or not math.isfinite(value) or value < 0:
                raise ValueError(f"{name} must be a finite number of seconds >= 0, got {value!r}")
        for name in ("output_tokens", "max_concurrency", "seed"):
            value = getattr(self, name)
            if isinstance(value, bool) or not isinstance(value, int):
                raise ValueError(f"{name} must be an integer, got {value!r}")
        if self.output_tokens < 0:
            raise ValueError(f"output_tokens must be >= 0, got {self.output_tokens}")
        if self.max_concurrency < 0:
            raise ValueError(f"max_concurrency must be >= 0 (0: no limit), got {self.max_concurrency}")
        for name in ("jitter", "error_rate"):
            value = getattr(self, name)
            if isinstance(value, bool) or not isinstance(value, (int, float)) or not 0 <= value <= 1:
                raise ValueError(f"{name} must be a fraction between 0 and 1, got {value!r}")
        if not isinstance(self.model, str) or not self.model:
            raise ValueError(f"model must be a non-empty string, got {self.model!r}")
        if not isinstance(self.gc_freeze, bool):
            raise ValueError(f"gc_freeze must be a boolean, got {self.gc_freeze!r}")
