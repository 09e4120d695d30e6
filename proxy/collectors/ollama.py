"""Ollama's loaded models, read from its ``/api/ps``: Ollama has no ``/metrics`` of its own.

For each model in memory: that it is loaded, its memory (total and the share in VRAM)
and when Ollama will unload it (``expires_at``, unix seconds), so cold loads and
evictions show next to the ``load`` phase of requests. The collector enables itself:
while the upstream answers ``/api/ps`` with 404 (not an Ollama) it exports nothing, asks
again only every ``recheck`` seconds, and counts as healthy; an Ollama that does not
answer is a failed read, so the sampler reports it and keeps the last models until stale.

The HTTP read is a parameter (``fetch``) like the NVML and psutil sources: tests feed
their own, and nothing is registered at import time.
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


class HttpFetch:
    """GET ``/api/ps`` of ``upstream``: (status, body). ``close()`` closes its pooled connection."""

    def __init__(self, upstream: str, timeout: float) -> None:
        # No proxy or .netrc from the environment (the sidecar must reach its upstream
        # itself), no redirects, no cookie jar.
        self._client = httpx.Client(base_url=upstream.rstrip("/"), timeout=timeout, trust_env=False,
                                    follow_redirects=False)

    def __call__(self) -> tuple[int, bytes]:
        response = self._client.get("/api/ps", headers={"User-Agent": "infermeter-ollama"})
        return response.status_code, response.content

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
        self._families = self._parse(orjson.loads(body))
        self._next_read = now + self._refresh
        return Sample(self._families)

    def _parse(self, answer: Any) -> tuple[Metric, ...]:
        loaded, memory, expires = _families()
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
                    memory.add_metric([model, kind], float(value))
            expiry = _unix_seconds(entry.get("expires_at"))
            if expiry is not None:
                expires.add_metric([model], expiry)
        return loaded, memory, expires


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
