"""Every observation of a request lands under the one model label it ends with (issue 19).

A llama.cpp ``/completion`` stream names its model only in its last event. Its token gaps
are held on the record and, past ``GAP_BUFFER`` of them, drained mid-stream: before issue
19 those went to ``model="unknown"`` (596 of a 1,200-token stream's 1,199) and the rest
to the real model. Over real sockets with the simulator, in one process and under
``--workers 2`` (whose supervisor merges the workers' histograms).
"""

from __future__ import annotations

from collections.abc import Callable

import httpx

from proxy.timing import GAP_BUFFER
from tests.support.metrics import Scrape, after_requests, scrape
from tests.support.servers import ThreadServer
from tests.workers.conftest import settled, simulator, workers_proxy

TOKENS = 1200
# The simulator's one model name, which its /completion stream sends only in the last event.
MODEL = "infermeter-sim"
TBT = "infermeter_time_between_tokens_seconds"
LLAMACPP = {"endpoint": "llamacpp_completion"}


def _long_completion(url: str) -> int:
    """One /completion stream of ``TOKENS`` tokens; the events the client received."""
    body = {"prompt": "a b c", "stream": True}
    with httpx.stream("POST", url + "/completion", json=body, timeout=60) as r:
        r.raise_for_status()
        return sum(chunk.count(b'"stop":false') for chunk in r.iter_raw())


def _assert_one_label(m: Scrape) -> None:
    assert m.get(f"{TBT}_count", model="unknown", **LLAMACPP) == 0
    assert m.get(f"{TBT}_count", model=MODEL, **LLAMACPP) == TOKENS - 1
    # The _count is the +Inf bucket: the buckets were added whole, and so was the sum.
    assert m.get(f"{TBT}_bucket", model=MODEL, le="+Inf", **LLAMACPP) == TOKENS - 1
    assert m.get(f"{TBT}_sum", model=MODEL, **LLAMACPP) > 0
    # The record's other series agree on the label: no request was split.
    assert m.get("infermeter_requests_total", model=MODEL, **LLAMACPP) == 1
    assert m.get("infermeter_requests_total", model="unknown", **LLAMACPP) == 0


def test_a_long_stream_named_only_at_its_end_lands_under_that_name(
        start_simulator: Callable[..., ThreadServer], start_proxy: Callable[..., ThreadServer]) -> None:
    # 1 ms between tokens: the relay reads far more than GAP_BUFFER chunks, so gaps are
    # drained mid-stream, before the last event names the model.
    sim = start_simulator(ttft=0.01, tbt=0.001, output_tokens=TOKENS)
    proxy = start_proxy(sim.url)
    assert TOKENS - 1 > 2 * GAP_BUFFER
    before = scrape(proxy.url)
    assert _long_completion(proxy.url) == TOKENS
    _assert_one_label(after_requests(proxy.url, before, 1))


def test_the_same_under_workers_whose_histograms_are_merged() -> None:
    with simulator("--ttft", "0.01", "--tbt", "0.001", "--output-tokens", str(TOKENS)) as sim, workers_proxy(sim.url, 2) as proxy:
        assert _long_completion(proxy.url) == TOKENS
        m = settled(proxy.url, lambda s: s.get("infermeter_requests_total", **LLAMACPP) >= 1, "the stream recorded")
        _assert_one_label(m)
