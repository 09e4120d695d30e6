"""A bound histogram child's ``observe`` that finds the bucket by bisection.

prometheus-client's ``Histogram.observe`` walks the bucket bounds one by one until the
value fits. Our families have 70-100 buckets (``proxy.metrics.buckets``), so a typical
TTFT or duration walks 30-50 of them: about 1.5-2.5 us per observation on this machine,
several per request and one per token gap. Bisection finds the same bucket in ~7 steps;
the updates (the sum, that one bucket, its exemplar) are the library's own, on the
child's own values, so the exposition cannot tell the two apart
(tests/metrics/test_fastobserve.py holds them equal, exemplars included).

``observe_counts`` adds many observations held as per-bucket counts in one go: the
recorder holds a long stream's token gaps that way until the request's model label is
final (issue 19).

The private fields read here (``HOOKS``) are prometheus-client's; pyproject.toml bounds
the library to the versions tested, tests/metrics/test_fastobserve.py pins each field,
and ``check_hooks`` stops start-up rather than a request when a version moved one.
"""

from __future__ import annotations

import time
from bisect import bisect_left
from typing import Any

from prometheus_client import Histogram
from prometheus_client.samples import Exemplar
from prometheus_client.validation import _validate_exemplar

# What a histogram child keeps: its bucket bounds (+Inf last), a value per bucket (not
# cumulative), and the sum.
HOOKS = ("_upper_bounds", "_buckets", "_sum")


class FastObserve:
    """``observe(amount, exemplar=None)`` for one bound histogram child."""

    __slots__ = ("child", "_bounds", "_buckets", "_sum")

    def __init__(self, child: Any) -> None:
        self.child = child
        self._bounds: list[float] = list(child._upper_bounds)
        self._buckets: list[Any] = child._buckets
        self._sum: Any = child._sum

    def observe(self, amount: float, exemplar: dict[str, str] | None = None) -> None:
        if amount != amount:  # NaN fits no bucket: the library's own walk says what happens
            self.child.observe(amount, exemplar)
            return
        # The first bound >= amount, as the library's "amount <= bound" walk finds it; the
        # last bound is +Inf, so there always is one.
        i = bisect_left(self._bounds, amount)
        self._sum.inc(amount)
        bucket = self._buckets[i]
        bucket.inc(1)
        if exemplar:
            _validate_exemplar(exemplar)  # type: ignore[no-untyped-call]
            bucket.set_exemplar(Exemplar(exemplar, amount, time.time()))

    def observe_counts(self, counts: list[int], total: float) -> None:
        """``counts[i]`` observations in bucket ``i`` (the first bound >= the value, bisected
        over ``upper_bounds``), summing to ``total``: what observing each would leave, up
        to float rounding of the sum."""
        self._sum.inc(total)
        buckets = self._buckets
        for i, n in enumerate(counts):
            if n:
                buckets[i].inc(n)


def upper_bounds(histogram: Histogram) -> list[float]:
    """The bucket bounds, +Inf last, that ``histogram`` and every child of it share."""
    return list(histogram._upper_bounds)


def check_hooks() -> None:
    """Raise when this prometheus-client keeps histograms differently from the versions
    pyproject.toml allows: at start-up, not in a request."""
    probe = Histogram("infermeter_probe", "probe", registry=None)
    missing = [name for name in HOOKS if not hasattr(probe, name)]
    if missing:
        raise RuntimeError(f"this prometheus-client has no Histogram {', '.join(missing)}: "
                           "install the version infermeter's pyproject.toml names")


def fast(child: Any) -> Any:
    """``child`` with a bisecting ``observe``, or ``child`` itself when it is not a plain
    histogram child (another library version, a test double)."""
    if not all(hasattr(child, name) for name in HOOKS):
        return child
    return FastObserve(child)
