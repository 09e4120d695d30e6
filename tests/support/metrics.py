"""Reading metrics back the way Prometheus would: a live ``/metrics`` page, a registry,
or a collector's families, all parsed into one ``Scrape``.

Counters only grow, so a test that shares its server with others takes a scrape before
its requests and one after and asserts on the difference (``after - before``).
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from typing import Any, TypeVar

import httpx
from prometheus_client import CollectorRegistry, generate_latest
from prometheus_client.metrics_core import Metric
from prometheus_client.parser import text_string_to_metric_families

from tests.support.wait import poll

T = TypeVar("T")
Labels = frozenset[tuple[str, str]]


class Scrape:
    """Every sample of one exposition, keyed by name and label set."""

    def __init__(self, families: Iterable[Metric], text: str = "") -> None:
        self.text = text
        self.samples: dict[tuple[str, Labels], float] = {}
        for family in families:
            for s in family.samples:
                self.samples[(s.name, frozenset(s.labels.items()))] = s.value

    @classmethod
    def parse(cls, text: str) -> Scrape:
        return cls(text_string_to_metric_families(text), text)

    def get(self, name: str, **labels: str) -> float:
        """Sum of the samples named ``name`` whose labels include ``labels`` (0 when none)."""
        wanted = labels.items()
        return sum(v for (n, ls), v in self.samples.items() if n == name and wanted <= ls)

    def value(self, name: str, /, **labels: str) -> float | None:
        """The one sample with exactly these labels, or None."""
        return self.samples.get((name, frozenset(labels.items())))

    def series(self, name: str) -> list[dict[str, str]]:
        """The label sets of the samples named ``name``."""
        return [dict(ls) for n, ls in self.samples if n == name]

    def names(self) -> set[str]:
        return {n for n, _ in self.samples}

    def has(self, name: str) -> bool:
        return name in self.names()

    def __sub__(self, before: Scrape) -> Delta:
        return Delta(before, self)


class Delta:
    """The change between two scrapes of one server (other calls may precede them)."""

    def __init__(self, before: Scrape, after: Scrape) -> None:
        self.before = before
        self.after = after

    def get(self, name: str, **labels: str) -> float:
        return self.after.get(name, **labels) - self.before.get(name, **labels)


def scrape(base_url: str, path: str = "/metrics", **kwargs: Any) -> Scrape:
    """GET ``base_url + path`` (httpx ``kwargs``, e.g. headers) and parse it; it must answer 200."""
    kwargs.setdefault("timeout", 5.0)
    response = httpx.get(base_url + path, **kwargs)
    response.raise_for_status()
    return Scrape.parse(response.text)


def render(registry: CollectorRegistry) -> Scrape:
    """Render the text exposition and parse it back, so the output format is checked too."""
    return Scrape.parse(generate_latest(registry).decode())


def measured(base_url: str, action: Callable[[], T]) -> tuple[T, Delta]:
    """Run ``action`` and return its result with the metrics it added."""
    before = scrape(base_url)
    result = action()
    return result, scrape(base_url) - before


def after_requests(proxy_url: str, before: Scrape, count: int, timeout: float = 5.0) -> Scrape:
    """Scrape the proxy once it has recorded ``count`` more finished requests.

    The proxy writes a request's metrics as the response ends, which can be a moment
    after the client has read the last byte.
    """
    return poll(lambda: scrape(proxy_url), lambda now: (now - before).get("infermeter_requests_total") >= count, timeout)
