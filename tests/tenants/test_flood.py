"""A flood of distinct tenants (DESIGN.md section 14): 10,000 requests, each naming a new
tenant by header or by API key, leave ``--max-tenants`` tenants and ``other``, and the
proxy's memory does not grow with them."""

from __future__ import annotations

import json
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import psutil

from tests.faults.rawclient import chat_request, connect, read_responses
from tests.support.metrics import scrape
from tests.support.servers import ChildProcess
from tests.support.wait import wait_for
from tests.tenants.conftest import KEYS, write_keys
from tests.workers.conftest import simulator

FLOOD = 10_000
CONNECTIONS = 8
# Requests written at once on a connection: raw pipelined HTTP keeps the client's own CPU
# (an SDK's is a few times the proxy's) off a loaded machine.
BATCH = 25
MAX_TENANTS = 100
# What the flood may add to the proxy's resident memory. Unbounded, each tenant costs its
# five series (~4 KB, docs/attribution.md): 10,000 of them ~40 MB.
GROWTH_LIMIT = 8 * 1024 * 1024
BODY = json.dumps({"model": "m", "messages": [], "max_tokens": 1}).encode()


def _send(port: int, headers: list[bytes]) -> None:
    """One request per header line, over CONNECTIONS kept-alive connections; every answer must be 200."""

    def run(part: list[bytes]) -> None:
        with connect(port, timeout=60) as sock:
            for i in range(0, len(part), BATCH):
                batch = part[i:i + BATCH]
                sock.sendall(b"".join(chat_request(port, BODY, line + b"\r\n") for line in batch))
                statuses = [status for status, _ in read_responses(sock, len(batch), timeout=60)]
                assert statuses == [200] * len(batch), statuses

    with ThreadPoolExecutor(CONNECTIONS) as pool:
        for done in [pool.submit(run, headers[n::CONNECTIONS]) for n in range(CONNECTIONS)]:
            done.result()


def _rss(proxy: ChildProcess) -> int:
    return int(psutil.Process(proxy.pid).memory_info().rss)


def test_ten_thousand_tenants_keep_the_cap_and_the_memory(tmp_path: Path) -> None:
    keys = tmp_path / "keys.json"
    write_keys(keys, KEYS)
    with simulator("--ttft", "0", "--tbt", "0", "--output-tokens", "1") as sim, \
         ChildProcess(["serve", "--upstream", sim.url, "--port", "{port}", "--log-level", "warning",
                       "--collectors", "none", "--tenant-header", "x-tenant", "--tenant-keys", str(keys)]) as proxy:
        # Warm up every path the flood takes under a few tenants, then measure from there.
        warm = [b"x-tenant: warm-%d" % (i % 3) if i % 2 else b"authorization: Bearer " + KEYS["alpha"].encode()
                for i in range(2_000)]
        _send(proxy.port, warm)
        before = _rss(proxy)
        # Half name a new tenant by header, half by a new API key (hashed, and cached in a bounded dict).
        flood = [b"x-tenant: tenant-%d" % i if i % 2 else b"authorization: Bearer sk-flood-%d" % i for i in range(FLOOD)]
        _send(proxy.port, flood)
        wait_for(lambda: scrape(proxy.url).get("infermeter_tenant_requests_total") == len(warm) + FLOOD,
                 "every request counted", timeout=30)
        grown = _rss(proxy) - before
        m = scrape(proxy.url)
    tenants = {s["tenant"] for s in m.series("infermeter_tenant_requests_total")}
    assert len(tenants) == MAX_TENANTS + 1 and "other" in tenants
    assert len(m.series("infermeter_tenant_tokens_total")) == 4 * (MAX_TENANTS + 1)
    # The first to answer 2xx took the slots: the warm-up's four, then the flood's first.
    assert {"alpha", "warm-0", "warm-1", "warm-2"} <= tenants
    assert m.get("infermeter_tenant_requests_total", tenant="other") == FLOOD - (MAX_TENANTS - 4)
    assert grown < GROWTH_LIMIT, f"resident memory grew {grown / 2**20:.1f} MiB over {FLOOD} tenants"
