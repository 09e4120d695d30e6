"""With one slot, a second stream waits for the first, and its TTFT shows the wait."""

from __future__ import annotations

import threading

import pytest

from tests.support.servers import ChildProcess

from .client import StreamResult, chat_body, stream
from .conftest import MODEL_ALIAS
from tests.support.metrics import after_requests, scrape

pytestmark = pytest.mark.llamacpp

MAX_TOKENS = 48


def test_second_stream_ttft_includes_queue_wait(proxy_np1: ChildProcess) -> None:
    results: list[StreamResult] = []
    errors: list[BaseException] = []
    start = threading.Barrier(2)

    def one() -> None:
        try:
            start.wait()
            results.append(stream(proxy_np1.url, "/v1/chat/completions", chat_body(MAX_TOKENS, ignore_eos=True)))
        except BaseException as exc:  # noqa: BLE001 - re-raised in the test thread
            errors.append(exc)

    before = scrape(proxy_np1.url)
    threads = [threading.Thread(target=one) for _ in range(2)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(timeout=60)
    assert not errors, errors
    delta = after_requests(proxy_np1.url, before, 2) - before

    first, second = sorted(results, key=lambda r: r.token_times[0])
    assert len(first.token_times) == len(second.token_times) == MAX_TOKENS
    # The second request sits in the queue for the first's whole generation, then has
    # its own prompt evaluated (its timings.prompt_ms): its TTFT exceeds the first's by
    # the sum of the two. Measured at load average ~3.5: within 17 ms of that, with
    # generation 0.6-0.8 s and prompt 0.26-0.37 s.
    wait = second.ttft - first.ttft
    gen = first.generation_time
    assert second.timings is not None
    expected = gen + second.timings["prompt_ms"] / 1000
    assert gen > 0.15
    assert abs(wait - expected) <= 0.1, (wait, gen, expected)
    # The proxy's own TTFT observations add up to what the clients saw, less the
    # client-side overhead of each (4-18 ms measured). Had the proxy left the queue wait
    # out of the second's TTFT, the sum would fall short by more than the generation time.
    ttft_sum = delta.get("infermeter_time_to_first_token_seconds_sum", endpoint="chat_completions", model=MODEL_ALIAS)
    assert delta.get("infermeter_time_to_first_token_seconds_count", endpoint="chat_completions") == 2
    client_sum = first.ttft + second.ttft
    assert client_sum - 0.1 <= ttft_sum <= client_sum, (ttft_sum, client_sum)
