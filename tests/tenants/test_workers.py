"""``serve --workers 2``: the workers share one ``--max-tenants`` list, and the merged tenant
counters are exact sums."""

from __future__ import annotations

import httpx

from tests.workers.conftest import settled, simulator, workers_proxy

TENANTS = 40


def test_max_tenants_holds_across_workers() -> None:
    with simulator("--ttft", "0", "--tbt", "0", "--output-tokens", "3") as sim, \
         workers_proxy(sim.url, 2, "--tenant-header", "x-tenant", "--max-tenants", "3") as proxy:
        # A new connection each, so the kernel spreads them over both workers: each worker
        # alone would admit three tenants of its own.
        with httpx.Client(base_url=proxy.url, limits=httpx.Limits(max_keepalive_connections=0), timeout=30) as client:
            for i in range(TENANTS):
                body = {"model": "m", "messages": [], "max_tokens": 2}
                client.post("/v1/chat/completions", json=body, headers={"x-tenant": f"t{i}"}).raise_for_status()
        m = settled(proxy.url, lambda m: m.get("infermeter_tenant_requests_total") == TENANTS, f"{TENANTS} requests")
    tenants = {s["tenant"] for s in m.series("infermeter_tenant_requests_total")}
    assert tenants == {"t0", "t1", "t2", "other"}
    assert m.get("infermeter_tenant_requests_total", tenant="other") == TENANTS - 3
    assert m.get("infermeter_tenant_tokens_total", type="output") == 2 * TENANTS
    assert m.get("infermeter_tenant_tokens_total", tenant="t1", type="output") == 2
