"""A real Prometheus scrapes the proxy and llama-server's own /metrics, with the shipped rules.

llama-server runs with --metrics and a single slot (-np 1): while one stream generates,
a second one waits, and the normalized series of engines.yml must show it: one running,
at least one waiting, labelled engine="llamacpp".
"""

from __future__ import annotations

import threading
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.stack import exprs
from tests.stack.prometheus_server import Prometheus, run_prometheus
from tests.support.servers import ChildProcess

from .client import StreamResult, chat_body, stream
from .conftest import LlamaServer

pytestmark = pytest.mark.llamacpp

# Long enough (several seconds on this machine) for Prometheus to scrape and evaluate
# the rules a few times while the second request waits.
MAX_TOKENS = 400
ENGINE_JOB = "engine-llamacpp"


@pytest.fixture()
def prometheus(llama_server_np1: LlamaServer, proxy_np1: ChildProcess, tmp_path: Path) -> Iterator[Prometheus]:
    engine = llama_server_np1.url.removeprefix("http://")
    with run_prometheus(tmp_path, "infermeter", [proxy_np1.url.removeprefix("http://")], exprs.RULE_FILES,
                        more_jobs={ENGINE_JOB: [engine]}) as running:
        yield running


def test_queue_and_running_of_a_single_slot_server(prometheus: Prometheus, proxy_np1: ChildProcess) -> None:
    selector = f'{{engine="llamacpp",job="{ENGINE_JOB}"}}'
    # Idle first: nothing runs or waits.
    assert prometheus.wait(f"engine:requests_waiting{selector}", lambda v: v == [0.0], 10) == [0.0]
    assert prometheus.query(f"engine:requests_running{selector}") == [0.0]

    results: list[StreamResult] = []
    errors: list[BaseException] = []

    def one() -> None:
        try:
            results.append(stream(proxy_np1.url, "/v1/chat/completions", chat_body(MAX_TOKENS, ignore_eos=True)))
        except BaseException as exc:  # noqa: BLE001 - re-raised in the test thread
            errors.append(exc)

    threads = [threading.Thread(target=one) for _ in range(2)]
    for thread in threads:
        thread.start()
    try:
        waiting = prometheus.wait(f"engine:requests_waiting{selector}", lambda v: bool(v) and v[0] >= 1, 20)
        running = prometheus.query(f"engine:requests_running{selector}")
        # The proxy, scraped by the same Prometheus, relays both at once.
        in_flight = prometheus.query('sum(infermeter_requests_in_flight{job="infermeter"})')
    finally:
        for thread in threads:
            thread.join(timeout=120)
    assert not errors, errors
    assert len(results) == 2
    assert waiting and waiting[0] >= 1, f"the second request never showed as waiting: {waiting}"
    assert running == [1.0], running
    assert in_flight == [2.0], in_flight
    # Both done: the queue drains.
    assert prometheus.wait(f"engine:requests_waiting{selector}", lambda v: v == [0.0], 15) == [0.0]
    assert prometheus.wait(f"engine:requests_running{selector}", lambda v: v == [0.0], 15) == [0.0]
