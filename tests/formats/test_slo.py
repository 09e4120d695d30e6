"""SLOs end to end: a request meets only when it meets every SLO set; thresholds are buckets."""

from __future__ import annotations

from collections.abc import Callable

import openai
from openai.types.chat import ChatCompletionMessageParam

from tests.formats.conftest import Route
from tests.formats.expect import SCHEDULE
from tests.support.metrics import measured
from tests.support.metrics import scrape
from tests.support.servers import ThreadServer
from tests.support.sdk import closing

SLO_TTFT = 0.3  # neither value is in the default bucket families: they must be added
SLO_TPOT = 0.035
MESSAGES: list[ChatCompletionMessageParam] = [{"role": "user", "content": "one two"}]


def test_slo_met_and_missed(start_simulator: Callable[..., ThreadServer],
                            start_proxy: Callable[..., ThreadServer]) -> None:
    sim = start_simulator(**SCHEDULE)
    proxy = start_proxy(sim.url, slo_ttft=SLO_TTFT, slo_tpot=SLO_TPOT)
    client = closing(openai.OpenAI(base_url=proxy.url + "/v1", api_key="k", max_retries=0, timeout=10))

    def stream(**headers: str) -> None:
        chunks = client.chat.completions.create(model="slo", messages=MESSAGES, stream=True,
                                                extra_headers=headers)
        assert sum(1 for c in chunks if c.choices and c.choices[0].delta.content) >= 4

    stream()  # TTFT 0.05 s, TPOT 0.01 s: met
    stream(**{"x-sim-ttft": "0.45"})  # first token too late: missed
    stream(**{"x-sim-tbt": "0.07", "x-sim-output-tokens": "4"})  # tokens too slow: missed
    client.chat.completions.create(model="slo", messages=MESSAGES)  # no TTFT/TPOT: met

    m = scrape(proxy.url)
    labels = {"endpoint": "chat_completions", "model": "slo"}
    assert m.get("infermeter_slo_requests_total", **labels, result="met") == 2
    assert m.get("infermeter_slo_requests_total", **labels, result="missed") == 2
    # Attainment is exact from the threshold's own bucket.
    ttft = "infermeter_time_to_first_token_seconds_bucket"
    assert m.get(ttft, **labels, le=str(SLO_TTFT)) == 2
    assert m.get(ttft, **labels, le="+Inf") == 3
    tpot = "infermeter_time_per_output_token_seconds_bucket"
    assert m.get(tpot, **labels, le=str(SLO_TPOT)) == 2
    assert m.get(tpot, **labels, le="+Inf") == 3
    # The threshold joins only its own family.
    assert not [s for s in m.series("infermeter_time_between_tokens_seconds_bucket") if s["le"] == str(SLO_TPOT)]


def test_without_slo_flags_there_is_no_slo_series(route: Route) -> None:
    client = closing(openai.OpenAI(base_url=route.proxied + "/v1", api_key="k", max_retries=0, timeout=10))
    _, d = measured(route.proxied, lambda: client.chat.completions.create(model="no-slo", messages=MESSAGES))
    assert d.get("infermeter_requests_total", endpoint="chat_completions", model="no-slo") == 1
    assert "infermeter_slo_requests" not in d.after.text
