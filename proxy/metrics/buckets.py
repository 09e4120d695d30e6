"""Histogram bucket families (DESIGN.md section 6), in one place.

SLO thresholds given by flags join their family so PromQL can compute attainment
exactly from ``_bucket{le="<threshold>"}``.
"""

from __future__ import annotations

from collections.abc import Iterable

# Also the family of upstream response headers: both measure a wait from arrival.
TTFT = (0.001, 0.005, 0.01, 0.02, 0.04, 0.06, 0.08, 0.1, 0.25, 0.5, 0.75, 1, 2, 2.5, 5, 7.5, 10, 15, 20, 30, 60)
# Time between tokens and time per output token share one family.
INTER_TOKEN = (0.001, 0.0025, 0.005, 0.0075, 0.01, 0.015, 0.02, 0.025, 0.03, 0.04, 0.05, 0.075,
               0.1, 0.15, 0.2, 0.3, 0.5, 0.75, 1, 2.5, 5, 10)
REQUEST_DURATION = (0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2, 4, 8, 16, 32, 64, 128, 256, 512)
TOKENS = (1, 2, 5, 10, 20, 50, 100, 200, 500, 1000, 2000, 5000, 10000, 20000, 50000, 100000, 200000)
# Tokens per second spans ~1 (a huge model on CPU) to ~10^4 (a cached tiny model).
TOKENS_PER_SECOND = (1, 2, 5, 10, 20, 30, 50, 75, 100, 150, 200, 300, 500, 1000, 2000, 5000, 10000)
PROBE_DURATION = (0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10)


def with_thresholds(family: Iterable[float], *thresholds: float | None) -> tuple[float, ...]:
    """The family plus any thresholds, sorted; rejects a family that is not strictly increasing."""
    base = tuple(float(b) for b in family)
    if any(b <= a for a, b in zip(base, base[1:])):
        raise ValueError(f"bucket family must be strictly increasing: {base}")
    extra = {float(t) for t in thresholds if t is not None}
    return tuple(sorted(set(base) | extra))
