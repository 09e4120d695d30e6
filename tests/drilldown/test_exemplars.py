"""Exemplars: in the OpenMetrics exposition, and through a real Prometheus with exemplar storage."""

from __future__ import annotations

import time
from collections.abc import Callable
from pathlib import Path

import httpx

from tests.drilldown.otlp import OtlpReceiver
from tests.stack.prometheus_server import run_prometheus
from tests.support.servers import ThreadServer

OPENMETRICS = {"accept": "application/openmetrics-text; version=1.0.0"}
EXEMPLAR_FAMILIES = ("infermeter_time_to_first_token_seconds", "infermeter_time_per_output_token_seconds",
                     "infermeter_request_duration_seconds")


def _traffic(url: str, n: int) -> None:
    with httpx.Client() as client:
        for _ in range(n):
            client.post(url + "/v1/chat/completions", json={"model": "m", "messages": [], "stream": True}).raise_for_status()


def test_exemplars_carry_the_request_id_without_tracing(upstream: ThreadServer,
                                                        start_proxy: Callable[..., ThreadServer]) -> None:
    proxy = start_proxy(upstream.url)
    httpx.post(proxy.url + "/v1/chat/completions", headers={"x-request-id": "req-42"},
               json={"model": "m", "messages": [], "stream": True}).raise_for_status()
    response = httpx.get(proxy.url + "/metrics", headers=OPENMETRICS)
    assert response.headers["content-type"].startswith("application/openmetrics-text")
    for family in EXEMPLAR_FAMILIES:
        assert any(line.startswith(family + "_bucket") and '# {request_id="req-42"}' in line
                   for line in response.text.splitlines()), family
    # The classic text format has no exemplars.
    assert "req-42" not in httpx.get(proxy.url + "/metrics").text


def test_prometheus_stores_exemplars_that_name_received_spans(tmp_path: Path, tracing_env: OtlpReceiver,
                                                              upstream: ThreadServer,
                                                              start_proxy: Callable[..., ThreadServer]) -> None:
    proxy = start_proxy(upstream.url)
    target = proxy.url.removeprefix("http://")
    with run_prometheus(tmp_path, "infermeter", [target], [], flags=["--enable-feature=exemplar-storage"]) as prom:
        start = time.time() - 5
        _traffic(proxy.url, 5)
        spans = {s.trace_id for s in tracing_env.wait_for(5)}
        deadline = time.monotonic() + 15
        found: dict[str, set[str]] = {}
        while time.monotonic() < deadline:
            found = {}
            for family in EXEMPLAR_FAMILIES:
                body = httpx.get(f"{prom.url}/api/v1/query_exemplars", timeout=10,
                                 params={"query": f"{family}_bucket", "start": start, "end": time.time() + 5}).json()
                assert body["status"] == "success", body
                found[family] = {e["labels"]["trace_id"] for series in body["data"] for e in series["exemplars"]}
            if all(found.values()):
                break
            time.sleep(0.5)
        for family, trace_ids in found.items():
            assert trace_ids, f"no exemplars stored for {family}"
            assert trace_ids <= spans, f"{family}: exemplar trace ids not among the received spans"
