"""Read Prometheus text from the proxy and from llama-server, and take differences.

Both expositions are parsed with prometheus_client's own parser, so the tests check
what a Prometheus server would see. Counters only ever grow, so a test takes one
snapshot before its requests and one after and asserts on the difference: the
session-scoped servers can be shared by every test.
"""

from __future__ import annotations

import time
from dataclasses import dataclass

import httpx
from prometheus_client.parser import text_string_to_metric_families

SampleKey = tuple[str, frozenset[tuple[str, str]]]


@dataclass(frozen=True)
class Snapshot:
    samples: dict[SampleKey, float]

    def value(self, name: str, **labels: str) -> float:
        """Sum of the samples called ``name`` whose labels include ``labels``."""
        wanted = set(labels.items())
        return sum(v for (n, ls), v in self.samples.items() if n == name and wanted <= ls)

    def has(self, name: str) -> bool:
        return any(n == name for n, _ in self.samples)

    def __sub__(self, before: Snapshot) -> Delta:
        return Delta(self, before)


@dataclass(frozen=True)
class Delta:
    after: Snapshot
    before: Snapshot

    def value(self, name: str, **labels: str) -> float:
        return self.after.value(name, **labels) - self.before.value(name, **labels)


def scrape(base_url: str) -> Snapshot:
    response = httpx.get(base_url + "/metrics", timeout=5.0)
    response.raise_for_status()
    samples: dict[SampleKey, float] = {}
    for family in text_string_to_metric_families(response.text):
        for sample in family.samples:
            samples[(sample.name, frozenset(sample.labels.items()))] = sample.value
    return Snapshot(samples)


def settled(base_url: str, name: str, want: float, timeout: float, **labels: str) -> tuple[float, float]:
    """Poll until ``name`` equals ``want``; return (last value, seconds waited)."""
    start = time.monotonic()
    while True:
        value = scrape(base_url).value(name, **labels)
        waited = time.monotonic() - start
        if value == want or waited > timeout:
            return value, waited
        time.sleep(0.02)


def after_requests(proxy_url: str, before: Snapshot, count: int, timeout: float = 5.0) -> Snapshot:
    """Scrape the proxy once it has recorded ``count`` more finished requests.

    The proxy writes a request's metrics as the response ends, which can be a moment
    after the client has read the last byte.
    """
    deadline = time.monotonic() + timeout
    while True:
        now = scrape(proxy_url)
        done = now.value("infermeter_requests_total") - before.value("infermeter_requests_total")
        if done >= count or time.monotonic() > deadline:
            return now
        time.sleep(0.02)
