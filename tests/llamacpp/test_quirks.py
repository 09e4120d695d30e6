"""llama-server's stream quirks, seen in the raw stream and handled by the proxy.

- chat streams open with a role-only chunk whose ``content`` is null: not a token;
- /v1/completions puts ``usage`` into the finish chunk even without stream_options:
  exact counts, not estimates;
- the last chunk carries an extra ``timings`` object: relayed, and no parse error.
"""

from __future__ import annotations

import pytest

from tests.support.servers import ChildProcess

from .client import chat_body, completion_body, stream, text_of
from .conftest import MODEL_ALIAS
from tests.support.metrics import after_requests, scrape

pytestmark = pytest.mark.llamacpp


def test_role_only_first_chunk_is_not_a_token(proxy: ChildProcess) -> None:
    before = scrape(proxy.url)
    result = stream(proxy.url, "/v1/chat/completions", chat_body(16))
    delta = after_requests(proxy.url, before, 1) - before

    first = result.chunks[0]["choices"][0]["delta"]
    assert first.get("role") == "assistant" and "content" in first and first["content"] is None
    tokens = sum(1 for c in result.chunks if text_of(c))
    assert tokens >= 2
    # One gap between each pair of token events: a role-only chunk counted as a token
    # would add one gap (and move TTFT earlier).
    gaps = delta.get("infermeter_time_between_tokens_seconds_count", endpoint="chat_completions", model=MODEL_ALIAS)
    assert gaps == tokens - 1
    assert delta.get("infermeter_time_to_first_token_seconds_count", endpoint="chat_completions") == 1


def test_completions_usage_in_finish_chunk_is_used(proxy: ChildProcess) -> None:
    before = scrape(proxy.url)
    result = stream(proxy.url, "/v1/completions", completion_body(16))
    delta = after_requests(proxy.url, before, 1) - before

    with_usage = [c for c in result.chunks if c.get("usage")]
    assert len(with_usage) == 1, "expected usage in exactly one chunk"
    finish = with_usage[0]
    assert finish["choices"] and finish["choices"][0]["finish_reason"] == "length"
    usage = finish["usage"]
    out = delta.get("infermeter_tokens_total", endpoint="completions", model=MODEL_ALIAS, type="output")
    inp = delta.get("infermeter_tokens_total", endpoint="completions", model=MODEL_ALIAS, type="input")
    assert (out, inp) == (usage["completion_tokens"], usage["prompt_tokens"])
    assert delta.get("infermeter_token_counts_estimated_total", endpoint="completions") == 0
    assert delta.get("infermeter_finish_reasons_total", endpoint="completions", reason="length") == 1


@pytest.mark.parametrize("endpoint", ["chat_completions", "completions"])
def test_timings_object_is_relayed_without_parse_errors(proxy: ChildProcess, endpoint: str) -> None:
    before = scrape(proxy.url)
    if endpoint == "chat_completions":
        result = stream(proxy.url, "/v1/chat/completions", chat_body(8))
    else:
        result = stream(proxy.url, "/v1/completions", completion_body(8))
    delta = after_requests(proxy.url, before, 1) - before

    timings = result.timings
    assert timings is not None and {"prompt_ms", "predicted_ms", "predicted_n"} <= timings.keys()
    assert timings["predicted_n"] == sum(1 for c in result.chunks if text_of(c))
    assert result.done
    assert delta.get("infermeter_stream_parse_errors_total", endpoint=endpoint) == 0
    assert delta.get("infermeter_requests_total", endpoint=endpoint, code="200", outcome="completed") == 1
