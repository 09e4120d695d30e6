"""The proxy's timing measured against the simulator's known schedule.

Simulator: first token 200 ms after arrival, then one every 20 ms, 30 tokens, no jitter.
Both run as child processes, as in production, so the test process's own work does not
share their event loops. Tolerances hold on a loaded 2-core machine: the schedule is
kept by absolute deadlines, so lateness shows as a few ms on the sums, not as drift.
"""

from __future__ import annotations

import concurrent.futures

import httpx
import pytest

from tests.support.metrics import scrape
from tests.support.servers import ChildProcess, free_port

TTFT, TBT, TOKENS = 0.2, 0.02, 30


@pytest.fixture(scope="module")
def stack() -> object:
    sim_port, proxy_port = free_port(), free_port()
    with ChildProcess(["simulate", "--port", str(sim_port), "--ttft", str(TTFT), "--tbt", str(TBT),
                       "--output-tokens", str(TOKENS), "--log-level", "warning"], sim_port, ready_path="/health") as sim:
        with ChildProcess(["serve", "--upstream", sim.url, "--port", str(proxy_port), "--collectors", "none",
                           "--log-level", "warning"], proxy_port) as proxy:
            yield proxy


def _stream(url: str, include_usage: bool) -> int:
    body: dict[str, object] = {"model": "timed", "stream": True, "messages": [{"role": "user", "content": "a b c"}]}
    if include_usage:
        body["stream_options"] = {"include_usage": True}
    with httpx.stream("POST", url + "/v1/chat/completions", json=body, timeout=10) as r:
        return sum(chunk.count(b"data: ") for chunk in r.iter_raw())


def test_histograms_match_the_schedule(stack: ChildProcess) -> None:
    with concurrent.futures.ThreadPoolExecutor(4) as pool:
        list(pool.map(lambda i: _stream(stack.url, include_usage=i % 2 == 0), range(4)))
    m = scrape(stack.url)
    lab = {"endpoint": "chat_completions", "model": "timed"}

    assert m.get("infermeter_time_to_first_token_seconds_count", **lab) == 4
    mean_ttft = m.get("infermeter_time_to_first_token_seconds_sum", **lab) / 4
    assert TTFT - 0.005 <= mean_ttft <= TTFT + 0.1

    gaps = 4 * (TOKENS - 1)
    assert m.get("infermeter_time_between_tokens_seconds_count", **lab) == gaps
    mean_tbt = m.get("infermeter_time_between_tokens_seconds_sum", **lab) / gaps
    assert TBT - 0.001 <= mean_tbt <= TBT + 0.008

    assert m.get("infermeter_time_per_output_token_seconds_count", **lab) == 4
    mean_tpot = m.get("infermeter_time_per_output_token_seconds_sum", **lab) / 4
    assert TBT - 0.001 <= mean_tpot <= TBT + 0.008

    duration = m.get("infermeter_request_duration_seconds_sum", stream="true", **lab) / 4
    assert TTFT + (TOKENS - 1) * TBT - 0.005 <= duration <= TTFT + (TOKENS - 1) * TBT + 0.15
    assert m.get("infermeter_upstream_response_headers_seconds_count", endpoint="chat_completions") == 4

    # Half asked for usage (exact), half did not (counted from token events): all exact here.
    assert m.get("infermeter_tokens_total", type="output", **lab) == 4 * TOKENS
    assert m.get("infermeter_request_tokens_count", type="output", **lab) == 4
    assert m.get("infermeter_token_counts_estimated_total", endpoint="chat_completions") == 2
    tps = m.get("infermeter_output_tokens_per_second_sum", **lab) / 4
    assert TOKENS / (duration + 0.1) <= tps <= TOKENS / (TTFT + (TOKENS - 1) * TBT - 0.005)
    assert m.get("infermeter_finish_reasons_total", reason="stop", **lab) == 4
