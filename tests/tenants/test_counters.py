"""Per-tenant counters through the proxy to the simulator, with the official SDKs as clients
(DESIGN.md section 14): exact token counts per tenant, the cap, and who may take a slot."""

from __future__ import annotations

import json
from collections import Counter
from collections.abc import Callable
from pathlib import Path

import anthropic
import httpx
import openai

from proxy.metrics.tenants import TOKEN_TYPES
from tests.support.metrics import after_requests, scrape
from tests.support.sdk import closing
from tests.support.servers import ThreadServer
from tests.tenants.conftest import KEYS, digest

Start = Callable[..., ThreadServer]
CHAT = "/v1/chat/completions"


def _openai(proxy: ThreadServer, key: str) -> openai.OpenAI:
    return closing(openai.OpenAI(base_url=proxy.url + "/v1", api_key=key, max_retries=0))


def _add(seen: Counter[tuple[str, str, str]], tenant: str, model: str, usage: dict[str, int]) -> None:
    for kind, n in usage.items():
        seen[tenant, model, kind] += n


def _alpha(proxy: ThreadServer, seen: Counter[tuple[str, str, str]]) -> None:
    """Three plain answers; the repeated prompt is served partly from the simulator's cache."""
    client = _openai(proxy, KEYS["alpha"])
    for prompt, cap in (("tell me a story", 4), ("tell me a story", 5), ("and another one please", 6)):
        r = client.chat.completions.create(model="m-chat", messages=[{"role": "user", "content": prompt}], max_tokens=cap)
        assert r.usage is not None and r.usage.completion_tokens == cap
        cached = r.usage.prompt_tokens_details.cached_tokens if r.usage.prompt_tokens_details else 0
        _add(seen, "alpha", r.model, {"input": r.usage.prompt_tokens, "output": cap, "cached_input": cached or 0})


def _beta(proxy: ThreadServer, seen: Counter[tuple[str, str, str]]) -> None:
    """Two streams whose usage the client asked for."""
    client = _openai(proxy, KEYS["beta"])
    for cap in (7, 9):
        stream = client.chat.completions.create(model="m-chat", messages=[{"role": "user", "content": f"count to {cap}"}],
                                                max_tokens=cap, stream=True, stream_options={"include_usage": True})
        usage = model = None
        for chunk in stream:
            model = chunk.model
            usage = chunk.usage or usage
        assert usage is not None and model is not None and usage.completion_tokens == cap
        cached = usage.prompt_tokens_details.cached_tokens if usage.prompt_tokens_details else 0
        _add(seen, "beta", model, {"input": usage.prompt_tokens, "output": cap, "cached_input": cached or 0})


def _gamma(proxy: ThreadServer, seen: Counter[tuple[str, str, str]]) -> None:
    """Anthropic's SDK sends its key as x-api-key."""
    client = closing(anthropic.Anthropic(base_url=proxy.url, api_key=KEYS["gamma"], max_retries=0))
    for cap in (3, 8):
        msg = client.messages.create(model="m-claude", max_tokens=cap, messages=[{"role": "user", "content": "hello"}])
        assert msg.usage.output_tokens == cap
        _add(seen, "gamma", msg.model, {"input": msg.usage.input_tokens + (msg.usage.cache_read_input_tokens or 0),
                                        "output": cap, "cached_input": msg.usage.cache_read_input_tokens or 0})


def test_three_tenants_get_exact_token_counts(start_simulator: Start, start_proxy: Start, keys_file: Path,
                                             tmp_path: Path) -> None:
    sim = start_simulator(ttft=0.005, tbt=0.001, output_tokens=20)
    log = tmp_path / "requests.jsonl"
    proxy = start_proxy(sim.url, tenant_keys=str(keys_file), slo_ttft=30.0, request_log=str(log))
    before = scrape(proxy.url)
    seen: Counter[tuple[str, str, str]] = Counter()
    _alpha(proxy, seen)
    _beta(proxy, seen)
    _gamma(proxy, seen)
    # A key the file does not know: named by its digest's first 8 hex digits, never itself.
    stranger = "sk-stranger-KEYSECRET-77aa"
    r = _openai(proxy, stranger).chat.completions.create(model="m-chat", messages=[{"role": "user", "content": "x"}],
                                                         max_tokens=2)
    assert r.usage is not None
    unknown = "key:" + digest(stranger)[:8]
    _add(seen, unknown, r.model, {"input": r.usage.prompt_tokens, "output": 2})
    m = after_requests(proxy.url, before, 8)

    assert seen["alpha", "m-chat", "cached_input"] > 0, "the repeated prompt should be partly cached"
    for tenant, model, requests in (("alpha", "m-chat", 3), ("beta", "m-chat", 2), ("gamma", "m-claude", 2),
                                    (unknown, "m-chat", 1)):
        for kind in TOKEN_TYPES:
            assert m.value("infermeter_tenant_tokens_total", tenant=tenant, model=model, type=kind) == \
                seen[tenant, model, kind], (tenant, kind)
        assert m.value("infermeter_tenant_requests_total", tenant=tenant, model=model, outcome="completed") == requests
        assert m.value("infermeter_tenant_slo_requests_total", tenant=tenant, model=model, result="met") == requests
    assert {s["tenant"] for s in m.series("infermeter_tenant_requests_total")} == {"alpha", "beta", "gamma", unknown}
    # Per tenant, the counts add up to the model totals: nothing lost, nothing counted twice.
    for kind in ("input", "output"):
        assert m.get("infermeter_tenant_tokens_total", type=kind) == m.get("infermeter_tokens_total", type=kind)
    # No histogram carries a tenant.
    assert not [line for line in m.text.splitlines() if "_bucket{" in line and "tenant=" in line]

    proxy.app.drilldown.close()  # flush the request log, as shutdown does
    lines = [json.loads(line) for line in log.read_text().splitlines()]
    assert Counter(line["tenant"] for line in lines) == {"alpha": 3, "beta": 2, "gamma": 2, unknown: 1}
    text = log.read_text() + m.text
    assert not [key for key in (*KEYS.values(), stranger) if key in text]


def test_a_tenant_seen_only_on_4xx_answers_takes_no_slot(start_simulator: Start, start_proxy: Start) -> None:
    sim = start_simulator(ttft=0, tbt=0, output_tokens=2)
    proxy = start_proxy(sim.url, tenant_header="X-Tenant", max_tenants=2, max_request_bytes=1000)
    body = {"model": "m", "messages": [{"role": "user", "content": "hi"}]}
    before = scrape(proxy.url)
    with httpx.Client(base_url=proxy.url, timeout=10) as client:
        # Refused by the upstream (401) and by the proxy itself (413): neither admits a tenant.
        for _ in range(3):
            assert client.post(CHAT, json=body, headers={"x-tenant": "intruder", "x-sim-error": "401"}).status_code == 401
        assert client.post(CHAT, json={**body, "pad": "x" * 2000}, headers={"x-tenant": "bulky"}).status_code == 413
        for tenant in ("first", "second", "third"):
            client.post(CHAT, json=body, headers={"x-tenant": tenant}).raise_for_status()
        # Admitted once, a tenant keeps its label on any answer.
        assert client.post(CHAT, json=body, headers={"x-tenant": "first", "x-sim-error": "429"}).status_code == 429
    m = after_requests(proxy.url, before, 8)
    assert {s["tenant"] for s in m.series("infermeter_tenant_requests_total")} == {"first", "second", "other"}
    assert m.value("infermeter_tenant_requests_total", tenant="first", model="m", outcome="completed") == 2
    # The intruder's three 401s, the 413 and the third tenant, who came after the slots ran out.
    assert m.get("infermeter_tenant_requests_total", tenant="other") == 5
    assert m.value("infermeter_tenant_requests_total", tenant="other", model="unknown", outcome="rejected") == 1


def test_header_values_are_cut_checked_and_fall_back_to_the_key(start_simulator: Start, start_proxy: Start,
                                                                 keys_file: Path) -> None:
    sim = start_simulator(ttft=0, tbt=0, output_tokens=1)
    proxy = start_proxy(sim.url, tenant_header="x-team", tenant_keys=str(keys_file))
    body = {"model": "m", "messages": [], "max_tokens": 1}
    before = scrape(proxy.url)
    with httpx.Client(base_url=proxy.url, timeout=10) as client:
        sent: list[tuple[dict[str, str | bytes], str]] = [
            ({"x-team": "t" * 100}, "t" * 64),                          # cut to 64 characters
            ({"x-team": "team a"}, "invalid"),                          # a space is not allowed
            ({"x-team": "tëam".encode()}, "invalid"),                   # nor non-ASCII bytes
            ({"x-team": "ops.eu-1:batch_2"}, "ops.eu-1:batch_2"),
            ({"x-team": "ops", "authorization": f"Bearer {KEYS['beta']}"}, "ops"),  # the header comes first
            ({"authorization": f"Bearer {KEYS['beta']}"}, "beta"),      # no header: the key
            ({"api-key": KEYS["gamma"]}, "gamma"),                      # Azure OpenAI's key header
            ({"x-team": "", "x-api-key": KEYS["alpha"]}, "alpha"),      # an empty header names nobody
            ({"authorization": "Basic dXNlcjpwYXNz"}, "none"),          # not a bearer key
            ({}, "none"),
        ]
        for headers, _ in sent:
            raw = [(k.encode(), v if isinstance(v, bytes) else v.encode()) for k, v in headers.items()]
            client.post(CHAT, json=body, headers=raw).raise_for_status()
    m = after_requests(proxy.url, before, len(sent))
    got = Counter({s["tenant"]: m.get("infermeter_tenant_requests_total", **s) for s in
                   m.series("infermeter_tenant_requests_total")})
    assert got == Counter(tenant for _, tenant in sent)
