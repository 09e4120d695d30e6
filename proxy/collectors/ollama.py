"""Ollama's loaded models, read from its ``/api/ps``: Ollama has no ``/metrics`` of its own.

For each model in memory: that it is loaded, its memory (total and the share in VRAM)
and when Ollama will unload it (``expires_at``, unix seconds), so cold loads and
evictions show next to the ``load`` phase of requests. The collector enables itself:
while the upstream answers ``/api/ps`` with 404 (not an Ollama) it exports nothing, asks
again only every ``recheck`` seconds, and counts as healthy; an Ollama that does not
answer is a failed read, so the sampler reports it and keeps the last models until stale.

The HTTP read is a parameter (``fetch``) like the NVML and psutil sources: tests feed
their own, and nothing is registered at import time. The real one reads at most
``MAX_ANSWER`` bytes: an answer past that is a failed read, not held in memory.

A memory size outside 0 to ``MAX_MODEL_BYTES`` (negative, 1e308) is no measurement: its
series is left out and the read reports a partial failure, as a parse error of a stream
is counted rather than exported.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Sequence
from datetime import datetime
from typing import Any

import httpx
import orjson
from prometheus_client.metrics_core import GaugeMetricFamily, Metric

from proxy.collectors.base import Sample, log
from proxy.metrics.labels import ModelLabels

Fetch = Callable[[], tuple[int, bytes]]
# Statuses of a server that has no such path: an upstream that is not Ollama.
_NOT_OLLAMA = frozenset({404, 405, 501})
# Each loaded model is about 500 bytes of /api/ps, and a server holds a handful: 4 MiB is
# thousands of models, and a bound on what a broken or hostile upstream costs per read
# (a 50 MB answer every second took the proxy from 59 to 919 MiB, issue 18).
MAX_ANSWER = 4 * 1024 * 1024
# A petabyte: no one model takes more memory than that in any machine for years to come.
MAX_MODEL_BYTES = float(2**50)


class HttpFetch:
    """GET ``/api/ps`` of ``upstream``: (status, body). ``close()`` closes its pooled connection."""

    def __init__(self, upstream: str, timeout: float, limit: int = MAX_ANSWER) -> None:
        # No proxy or .netrc from the environment (the sidecar must reach its upstream
        # itself), no redirects, no cookie jar.
        self._client = httpx.Client(base_url=upstream.rstrip("/"), timeout=timeout, trust_env=False,
                                    follow_redirects=False)
        self._limit = limit

    def __call__(self) -> tuple[int, bytes]:
        # Streamed and counted as it comes, never ``response.content``: an httpx response
        # sits in a reference cycle (it and its stream point at each other), so a body
        # stored on it lives until the cyclic GC runs, which a few large allocations
        # do not trigger. The parts here are plain locals, freed on return.
        with self._client.stream("GET", "/api/ps", headers={"User-Agent": "infermeter-ollama"}) as response:
            declared = response.headers.get("content-length", "")
            if declared.isdigit() and int(declared) > self._limit:
                raise ValueError(self._too_large(f"announces {declared} bytes, over", "not read"))
            parts: list[bytes] = []
            size = 0
            for part in response.iter_bytes():  # decoded: a compressed answer is held to the same bound
                size += len(part)
                if size > self._limit:
                    raise ValueError(self._too_large("passed", "cut off there"))
                parts.append(part)
            return response.status_code, b"".join(parts)

    def _too_large(self, what: str, done: str) -> str:
        return (f"GET /api/ps: the answer {what} the {self._limit / 2**20:g} MiB read limit (a real Ollama lists "
                f"its loaded models in a few KB): {done}")

    def close(self) -> None:
        self._client.close()


class OllamaCollector:
    name = "ollama"

    def __init__(self, fetch: Fetch, max_models: int = 32, refresh: float = 5.0, recheck: float = 60.0,
                 clock: Callable[[], float] = time.monotonic) -> None:
        self._fetch = fetch
        self._models = ModelLabels(max_models)
        self._refresh = refresh
        self._recheck = recheck
        self._clock = clock
        self._next_read = 0.0
        self._families: tuple[Metric, ...] = ()
        self._is_ollama: bool | None = None

    def describe(self) -> Sequence[Metric]:
        return _families()

    def close(self) -> None:
        # A fetch that holds a connection (HttpFetch) closes it; a test's plain function has none.
        close = getattr(self._fetch, "close", None)
        if close is not None:
            close()

    def sample(self) -> Sample:
        # The sampler asks every --sample-interval; Ollama logs every request, so /api/ps
        # is read at most every ``refresh`` seconds and the last answer served between.
        now = self._clock()
        if now < self._next_read:
            return Sample(self._families)
        status, body = self._fetch()
        if status in _NOT_OLLAMA:
            if self._is_ollama is not False:
                log.info("upstream answers /api/ps with %d: not an Ollama, the ollama collector stays idle", status)
            self._is_ollama = False
            self._families = ()
            self._next_read = now + self._recheck
            return Sample(())
        if not 200 <= status < 300:
            raise RuntimeError(f"GET /api/ps: {status}")
        if self._is_ollama is not True:
            log.info("upstream answers /api/ps: reading Ollama's loaded models")
        self._is_ollama = True
        families, impossible = self._parse(orjson.loads(body))
        self._families = families
        self._next_read = now + self._refresh
        if impossible:
            return Sample(families, ok=False, error=f"GET /api/ps: impossible memory sizes left out: {impossible}")
        return Sample(families)

    def _parse(self, answer: Any) -> tuple[tuple[Metric, ...], str]:
        """The families, and the model/size pairs left out as impossible (empty if none)."""
        loaded, memory, expires = _families()
        impossible: list[str] = []
        models = answer.get("models") if isinstance(answer, dict) else None
        if not isinstance(models, list):
            raise ValueError("GET /api/ps: no models list in the answer")
        seen: set[str] = set()
        for entry in models:
            if not isinstance(entry, dict):
                continue
            name = entry.get("name") or entry.get("model")
            model = self._models(name if isinstance(name, str) else None)
            if model in seen:
                continue  # past --max-models several names share "other": one series each
            seen.add(model)
            loaded.add_metric([model], 1.0)
            for kind, key in (("total", "size"), ("vram", "size_vram")):
                value = entry.get(key)
                if isinstance(value, (int, float)) and not isinstance(value, bool):
                    if 0 <= value <= MAX_MODEL_BYTES:
                        memory.add_metric([model, kind], float(value))
                    elif len(impossible) < 3:  # enough to say what is wrong in one log line
                        impossible.append(f"{model} {key}={value:.4g}")
            expiry = _unix_seconds(entry.get("expires_at"))
            if expiry is not None:
                expires.add_metric([model], expiry)
        return (loaded, memory, expires), ", ".join(impossible)


def _unix_seconds(value: object) -> float | None:
    """RFC 3339 (Go's time, nanoseconds and offset included) as unix seconds; None for
    a missing or zero time."""
    if not isinstance(value, str) or not value:
        return None
    try:
        moment = datetime.fromisoformat(value.replace("Z", "+00:00"))
    except ValueError:
        return None
    return moment.timestamp() if moment.year > 1970 else None


def _families() -> tuple[GaugeMetricFamily, GaugeMetricFamily, GaugeMetricFamily]:
    return (
        GaugeMetricFamily("infermeter_ollama_model_loaded", "1 for each model Ollama holds in memory (its /api/ps).",
                          labels=["model"]),
        GaugeMetricFamily("infermeter_ollama_model_memory_bytes",
                          "Memory a loaded Ollama model takes: total, and the part in GPU memory (vram).",
                          labels=["model", "kind"]),
        GaugeMetricFamily("infermeter_ollama_model_expires_at_seconds",
                          "When Ollama will unload the model if it stays idle, in unix seconds.", labels=["model"]),
    )
