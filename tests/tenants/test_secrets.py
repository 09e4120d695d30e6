"""A raw API key appears nowhere (DESIGN.md section 14): not in /metrics, not in any output of
the proxy at --log-level debug (its own lines, uvicorn's, the request log on stdout, the keys
file's reload errors), not in a span, not in an error body. The proxy runs in a child process
so every byte it writes is read back."""

from __future__ import annotations

import json
from collections.abc import Callable
from pathlib import Path

import anthropic
import httpx
import openai
import pytest

from tests.drilldown.otlp import OtlpReceiver
from tests.support.metrics import after_requests, scrape
from tests.support.sdk import closing
from tests.support.servers import ChildProcess, ThreadServer
from tests.support.wait import wait_for
from tests.tenants.conftest import KEYS, digest

Start = Callable[..., ThreadServer]
STRANGER = "sk-stranger-KEYSECRET-0d15ea5e"
SECRETS = (*KEYS.values(), STRANGER)


def _traffic(url: str) -> int:
    """Requests with keys through every path the tenant touches; how many were sent."""
    chat = {"model": "m", "messages": [{"role": "user", "content": "hi"}], "max_tokens": 2}
    oa = closing(openai.OpenAI(base_url=url + "/v1", api_key=KEYS["alpha"], max_retries=0))
    oa.chat.completions.create(**chat)  # type: ignore[call-overload]
    for _ in oa.chat.completions.create(**chat, stream=True):  # type: ignore[call-overload]
        pass
    closing(anthropic.Anthropic(base_url=url, api_key=KEYS["gamma"], max_retries=0)).messages.create(
        model="m", max_tokens=2, messages=[{"role": "user", "content": "hi"}])
    with httpx.Client(base_url=url, timeout=10) as client:
        assert client.post("/v1/chat/completions", json=chat, headers={"api-key": KEYS["beta"]}).status_code == 200
        # Failures: the upstream refuses (401, 500), the proxy refuses (413), a non-inference path.
        for status in (401, 500):
            r = client.post("/v1/chat/completions", json=chat, headers={"authorization": f"Bearer {STRANGER}",
                                                                         "x-sim-error": str(status)})
            assert r.status_code == status
        r = client.post("/v1/chat/completions", content=b"x" * 5000, headers={"x-api-key": STRANGER})
        assert r.status_code == 413
        assert client.get("/v1/models", headers={"authorization": f"Bearer {KEYS['alpha']}"}).status_code == 200
    return 8


@pytest.mark.parametrize("upstream_client", ["native", "httpx"])
def test_no_key_in_metrics_logs_spans_or_errors(start_simulator: Start, tmp_path: Path, upstream_client: str) -> None:
    sim = start_simulator(ttft=0, tbt=0, output_tokens=2)
    keys = tmp_path / "keys.json"
    keys.write_text(json.dumps({name: digest(key) for name, key in KEYS.items()}))
    out = tmp_path / "proxy.out"
    with OtlpReceiver() as receiver:
        env = {"OTEL_BSP_SCHEDULE_DELAY": "50", "OTEL_TRACES_SAMPLER": "always_on"}
        args = ["serve", "--upstream", sim.url, "--port", "{port}", "--log-level", "debug", "--collectors", "upstream",
                "--probe-interval", "0.2", "--upstream-client", upstream_client, "--tenant-keys", str(keys),
                "--request-log", "-", "--otlp-endpoint", receiver.url, "--max-request-bytes", "1000"]
        with ChildProcess(args, env=env, log=out) as proxy:
            before = scrape(proxy.url)
            sent = _traffic(proxy.url)
            metrics = after_requests(proxy.url, before, sent).text
            # The file written the wrong way round (raw keys as names): refused, and not quoted.
            keys.write_text(json.dumps({key: name for name, key in KEYS.items()}))
            wait_for(lambda: "keeping the last good map" in out.read_text(), "the reload error logged", timeout=10)
            spans = receiver.wait_for(sent)
        output = out.read_text()

    lines = [json.loads(line) for line in output.splitlines() if line.startswith("{")]
    assert {line["tenant"] for line in lines} == {"alpha", "beta", "gamma", "key:" + digest(STRANGER)[:8]}
    assert "DEBUG" in output  # the proxy did log at debug
    assert {s.attributes.get("infermeter.tenant") for s in spans} >= {"alpha", "beta", "gamma"}
    assert 'tenant="alpha"' in metrics
    span_text = repr([(s.name, s.attributes, s.resource) for s in spans])
    for secret in SECRETS:
        for where, text in (("output", output), ("metrics", metrics), ("spans", span_text)):
            assert secret not in text, f"a raw key in the proxy's {where}"
