"""One span per request, over real sockets: the openai SDK -> proxy -> simulator, spans to a
real OTLP/HTTP receiver decoding protobuf."""

from __future__ import annotations

import os
import time
from collections.abc import Callable

import httpx
import openai
import pytest

from tests.drilldown.otlp import BlackHole, OtlpReceiver, ReceivedSpan, dead_port
from tests.support.metrics import scrape
from tests.support.servers import ThreadServer
from tests.support.sdk import closing

TRACE_ID = "4bf92f3577b34da6a3ce929d0e0e4736"
CLIENT_SPAN = "00f067aa0ba902b7"
TRACEPARENT = f"00-{TRACE_ID}-{CLIENT_SPAN}-01"


def _client(proxy: ThreadServer, **headers: str) -> openai.OpenAI:
    return closing(openai.OpenAI(base_url=proxy.url + "/v1", api_key="sk-test-not-a-secret", default_headers=headers,
                         max_retries=0))


def _close(proxy: ThreadServer) -> None:
    """Flush the proxy's spans now (what its shutdown does)."""
    proxy.app.drilldown.close()


def test_openai_sdk_spans_continue_the_client_trace(tracing_env: OtlpReceiver, upstream: ThreadServer,
                                                     start_proxy: Callable[..., ThreadServer]) -> None:
    proxy = start_proxy(upstream.url)
    client = _client(proxy, traceparent=TRACEPARENT, tracestate="vendor=abc")
    stream = client.chat.completions.create(model="m-stream", messages=[{"role": "user", "content": "hi"}], stream=True,
                                            stream_options={"include_usage": True}, max_tokens=12, temperature=0.5)
    assert sum(1 for _ in stream) > 0
    plain = client.chat.completions.create(model="m-plain", messages=[{"role": "user", "content": "hi"}])
    assert plain.usage is not None
    # A stream without usage: the proxy counts token events, and says so.
    counted = client.completions.create(model="m-counted", prompt="hi", stream=True)
    assert sum(1 for _ in counted) > 0

    spans = {s.attributes["gen_ai.request.model"]: s for s in tracing_env.wait_for(3)}
    time.sleep(0.2)
    assert len(tracing_env.spans) == 3, "one span per request"
    m = scrape(proxy.url)
    for model, span in spans.items():
        # The proxy's span is a child of the client's span, in the client's trace.
        assert (span.trace_id, span.parent_span_id) == (TRACE_ID, CLIENT_SPAN)
        assert span.kind == 3  # SPAN_KIND_CLIENT
        a = span.attributes
        assert a["gen_ai.provider.name"] == "openai"
        assert a["gen_ai.response.model"] == model
        assert a["http.request.method"] == "POST" and a["http.response.status_code"] == 200
        assert a["server.address"] == "127.0.0.1" and a["server.port"] == upstream.port
        assert a["infermeter.outcome"] == "completed" and "error.type" not in a
        # Equal to what the metrics recorded.
        (reason,) = a["gen_ai.response.finish_reasons"]
        assert m.get("infermeter_finish_reasons_total", model=model, reason=reason) == 1
        duration = m.get("infermeter_request_duration_seconds_sum", model=model)
        assert abs((span.end_ns - span.start_ns) / 1e9 - duration) < 1e-3
        if model != "m-counted":
            assert a["gen_ai.usage.output_tokens"] == m.get("infermeter_tokens_total", model=model, type="output")
            assert a["gen_ai.usage.input_tokens"] == m.get("infermeter_tokens_total", model=model, type="input")
    s = spans["m-stream"]
    assert s.name == "chat m-stream"
    a = s.attributes
    assert a["gen_ai.operation.name"] == "chat" and a["gen_ai.request.stream"] is True
    assert a["gen_ai.request.max_tokens"] == 12 and a["gen_ai.request.temperature"] == 0.5
    ttft = m.get("infermeter_time_to_first_token_seconds_sum", model="m-stream")
    assert abs(a["gen_ai.response.time_to_first_chunk"] - ttft) < 1e-3
    assert abs(a["infermeter.tpot"] - m.get("infermeter_time_per_output_token_seconds_sum", model="m-stream")) < 1e-3
    assert spans["m-plain"].attributes["gen_ai.request.stream"] is False
    assert "gen_ai.response.time_to_first_chunk" not in spans["m-plain"].attributes
    c = spans["m-counted"].attributes
    assert spans["m-counted"].name == "text_completion m-counted"
    assert "gen_ai.usage.output_tokens" not in c
    assert c["infermeter.usage.estimated_output_tokens"] == m.get("infermeter_tokens_total", model="m-counted",
                                                                   type="output")
    assert s.resource["service.name"] == "infermeter"

    # The upstream saw a traceparent in the same trace, naming the proxy's span as parent,
    # the client's tracestate, and the request id the span carries.
    seen = [h for h in upstream.captured.headers if h.get("traceparent")]  # type: ignore[attr-defined]
    assert len(seen) == 3
    proxy_spans = {sp.span_id: sp for sp in spans.values()}
    for headers in seen:
        version, trace_id, parent, flags = headers["traceparent"].split("-")
        assert (version, trace_id, flags) == ("00", TRACE_ID, "01")
        assert parent in proxy_spans
        assert headers["tracestate"] == "vendor=abc"
        assert headers["x-request-id"] == proxy_spans[parent].attributes["infermeter.request_id"]
    assert m.get("infermeter_spans_exported_total") == 3
    assert m.get("infermeter_spans_dropped_total") == 0


def test_without_traceparent_a_trace_starts_and_client_request_id_is_kept(
        tracing_env: OtlpReceiver, upstream: ThreadServer, start_proxy: Callable[..., ThreadServer]) -> None:
    proxy = start_proxy(upstream.url)
    r = httpx.post(proxy.url + "/v1/chat/completions", headers={"x-request-id": "client-id-1"},
                   json={"model": "m", "messages": [{"role": "user", "content": "hi"}]})
    assert r.status_code == 200
    span = tracing_env.wait_for(1)[0]
    assert span.parent_span_id == ""
    assert span.attributes["infermeter.request_id"] == "client-id-1"
    assert upstream.captured.headers[-1]["x-request-id"] == "client-id-1"  # type: ignore[attr-defined]


def test_failed_requests_have_error_type(tracing_env: OtlpReceiver, start_proxy: Callable[..., ThreadServer]) -> None:
    proxy = start_proxy(f"http://127.0.0.1:{dead_port()}")
    r = httpx.post(proxy.url + "/v1/chat/completions", json={"model": "m", "messages": []})
    assert r.status_code == 502
    span = tracing_env.wait_for(1)[0]
    assert span.attributes["error.type"] == "upstream_error"
    assert span.attributes["http.response.status_code"] == 502
    assert span.status_code == 2  # STATUS_CODE_ERROR


def test_sampler_off_sends_no_spans(tracing_env: OtlpReceiver, monkeypatch: pytest.MonkeyPatch, upstream: ThreadServer,
                                    start_proxy: Callable[..., ThreadServer]) -> None:
    monkeypatch.setenv("OTEL_TRACES_SAMPLER", "always_off")
    proxy = start_proxy(upstream.url)
    for _ in range(3):
        httpx.post(proxy.url + "/v1/chat/completions", json={"model": "m", "messages": [], "stream": True}).raise_for_status()
    _close(proxy)
    assert tracing_env.spans == [] and tracing_env.requests == 0
    # The trace still propagates (unsampled), and exemplars carry the request id instead.
    flags = upstream.captured.headers[-1]["traceparent"].rsplit("-", 1)[1]  # type: ignore[attr-defined]
    assert int(flags, 16) & 1 == 0, "not sampled"
    text = httpx.get(proxy.url + "/metrics", headers={"accept": "application/openmetrics-text"}).text
    assert '# {request_id="' in text and "trace_id" not in text


def _timed_requests(url: str, n: int) -> float:
    body = {"model": "m", "messages": [{"role": "user", "content": "hi"}], "stream": True}
    with httpx.Client() as client:
        start = time.perf_counter()
        for _ in range(n):
            client.post(url + "/v1/chat/completions", json=body).raise_for_status()
        return time.perf_counter() - start


@pytest.mark.parametrize("collector", ["down", "black-holed"])
def test_dead_collector_costs_the_relay_nothing(collector: str, monkeypatch: pytest.MonkeyPatch, upstream: ThreadServer,
                                                start_proxy: Callable[..., ThreadServer]) -> None:
    n = 30
    baseline = start_proxy(upstream.url)
    _timed_requests(baseline.url, 3)
    plain = _timed_requests(baseline.url, n)
    with BlackHole() as hole:
        url = hole.url if collector == "black-holed" else f"http://127.0.0.1:{dead_port()}"
        monkeypatch.setenv("OTEL_EXPORTER_OTLP_ENDPOINT", url)
        monkeypatch.setenv("OTEL_EXPORTER_OTLP_TIMEOUT", "1")
        monkeypatch.setenv("OTEL_BSP_SCHEDULE_DELAY", "20")
        monkeypatch.setenv("OTEL_BSP_MAX_QUEUE_SIZE", "4")
        proxy = start_proxy(upstream.url)
        _timed_requests(proxy.url, 3)
        traced = _timed_requests(proxy.url, n)
        # 30 streams of ~80 ms each: a relay that waited on a 1 s export would take seconds.
        assert traced < plain * 1.5 + 0.3, (traced, plain)
        deadline = time.monotonic() + 15
        while True:
            m = scrape(proxy.url)
            dropped = m.get("infermeter_spans_dropped_total")
            if dropped == n + 3 or time.monotonic() > deadline:
                break
            time.sleep(0.2)
        assert dropped == n + 3, m.series("infermeter_spans_dropped_total")
        assert m.get("infermeter_spans_dropped_total", reason="queue_full") > 0
        assert m.get("infermeter_spans_dropped_total", reason="export_failed") > 0
        assert m.get("infermeter_spans_exported_total") == 0
        assert os.environ["OTEL_BSP_MAX_QUEUE_SIZE"] == "4"
