"""/metrics as Prometheus reads it: promtool accepts it, the contract's series are there."""

from __future__ import annotations

import os
import shutil
import subprocess
from collections.abc import Callable

import httpx
import pytest

from tests.support.metrics import scrape
from tests.support.servers import ChildProcess, ThreadServer, free_port

PROMTOOL = shutil.which("promtool")


def _traffic(url: str) -> None:
    body = {"model": "m1", "messages": [{"role": "user", "content": "hi"}], "stream": True}
    httpx.post(url + "/v1/chat/completions", json=body).raise_for_status()
    httpx.post(url + "/v1/completions", json={"model": "m1", "prompt": "hi"}).raise_for_status()
    httpx.get(url + "/v1/models").raise_for_status()


# Skipped only outside CI: .ci/run installs it, and there its absence must fail.
@pytest.mark.skipif(PROMTOOL is None and not os.environ.get("CI"),
                    reason="promtool missing: apt-get install prometheus (as .ci/run does)")
def test_promtool_accepts_metrics(sim: ThreadServer, start_proxy: Callable[..., ThreadServer]) -> None:
    assert PROMTOOL is not None, "promtool missing in CI"
    proxy = start_proxy(sim.url, slo_ttft=0.3, slo_tpot=0.05)
    _traffic(proxy.url)
    text = httpx.get(proxy.url + "/metrics").text
    result = subprocess.run([PROMTOOL, "check", "metrics"], input=text.encode(), capture_output=True, timeout=30)
    assert result.returncode == 0, result.stdout.decode() + result.stderr.decode()


def test_contract_series_present(sim: ThreadServer, start_proxy: Callable[..., ThreadServer]) -> None:
    proxy = start_proxy(sim.url, slo_ttft=0.3)
    _traffic(proxy.url)
    m = scrape(proxy.url)
    for name in ("infermeter_requests_total", "infermeter_requests_in_flight", "infermeter_request_duration_seconds_bucket",
                 "infermeter_upstream_response_headers_seconds_bucket", "infermeter_time_to_first_token_seconds_bucket",
                 "infermeter_time_between_tokens_seconds_bucket", "infermeter_time_per_output_token_seconds_bucket",
                 "infermeter_output_tokens_per_second_bucket", "infermeter_tokens_total",
                 "infermeter_request_tokens_bucket", "infermeter_finish_reasons_total",
                 "infermeter_token_counts_estimated_total", "infermeter_stream_parse_errors_total",
                 "infermeter_slo_requests_total", "infermeter_cached_input_tokens_total",
                 "infermeter_reasoning_output_tokens_total", "infermeter_upstream_phase_seconds_bucket",
                 "infermeter_build_info", "process_start_time_seconds",
                 "process_resident_memory_bytes"):
        assert m.series(name), f"{name} missing from /metrics"
    # The SLO threshold joined the TTFT buckets, so attainment is exact in PromQL.
    assert {"0.3"} <= {s["le"] for s in m.series("infermeter_time_to_first_token_seconds_bucket")}
    assert m.get("infermeter_slo_requests_total", result="met") + m.get("infermeter_slo_requests_total", result="missed") == 2
    # "other" endpoints are relayed and counted, never parsed; paths never become labels.
    assert m.get("infermeter_requests_total", endpoint="other", code="200") == 1
    assert all("path" not in s for s in m.series("infermeter_requests_total"))


def test_metrics_token_and_separate_port(sim: ThreadServer, start_proxy: Callable[..., ThreadServer]) -> None:
    proxy = start_proxy(sim.url, metrics_token="s3cret")
    assert httpx.get(proxy.url + "/metrics").status_code == 401
    assert httpx.get(proxy.url + "/metrics", headers={"Authorization": "Bearer wrong"}).status_code == 401
    ok = httpx.get(proxy.url + "/metrics", headers={"Authorization": "Bearer s3cret"})
    assert ok.status_code == 200 and "infermeter_build_info" in ok.text
    assert "s3cret" not in ok.text


def test_healthz(proxy: ThreadServer) -> None:
    assert httpx.get(proxy.url + "/healthz").json() == {"status": "ok"}


def test_metrics_on_their_own_port(sim: ThreadServer) -> None:
    port, metrics_port = free_port(), free_port()
    with ChildProcess(["serve", "--upstream", sim.url, "--port", str(port), "--metrics-port", str(metrics_port),
                       "--collectors", "none", "--log-level", "warning"], port):
        _traffic(f"http://127.0.0.1:{port}")
        m = scrape(f"http://127.0.0.1:{metrics_port}")
        assert m.get("infermeter_requests_total", endpoint="chat_completions") == 1
        # On the main port /metrics is an ordinary path, relayed to the upstream.
        relayed = httpx.get(f"http://127.0.0.1:{port}/metrics")
        assert relayed.text == httpx.get(sim.url + "/metrics").text and "infermeter_" not in relayed.text
