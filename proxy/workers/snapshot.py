"""A registry's families as plain JSON, and back: what a worker sends the supervisor.

JSON rather than pickle: the supervisor decodes data, never code, and a float survives
the round trip exactly (``repr``), infinities and NaN included. Exemplars travel with
their sample; prometheus-client's multiprocess mode is what loses them.
"""

from __future__ import annotations

import json
from collections.abc import Iterable
from typing import Any

from prometheus_client import CollectorRegistry
from prometheus_client.metrics_core import Metric
from prometheus_client.samples import Exemplar, Sample


def _time(value: Any) -> float | None:
    return None if value is None else float(value)


def encode(families: Iterable[Metric]) -> bytes:
    out: list[Any] = []
    for f in families:
        samples = []
        for s in f.samples:
            ex = s.exemplar
            samples.append([s.name, s.labels, s.value, _time(s.timestamp),
                            None if ex is None else [ex.labels, ex.value, _time(ex.timestamp)]])
        out.append([f.name, f.type, f.documentation, f.unit, samples])
    return json.dumps(out, separators=(",", ":")).encode()


def decode(data: bytes) -> list[Metric]:
    families: list[Metric] = []
    for name, typ, documentation, unit, samples in json.loads(data):
        family = Metric(name, documentation, typ, unit)
        for sname, labels, value, timestamp, ex in samples:
            exemplar = None if ex is None else Exemplar(ex[0], ex[1], ex[2])
            family.samples.append(Sample(sname, labels, value, timestamp, exemplar))
        families.append(family)
    return families


def snapshot(registry: CollectorRegistry) -> bytes:
    """The registry as one worker sees it now, encoded."""
    return encode(registry.collect())
