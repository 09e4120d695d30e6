"""GPU time and energy split among requests over real sockets (DESIGN.md section 14): the
openai SDK streams through infermeter to the simulator, whose load drives a fake NVML."""

from __future__ import annotations

import logging
import threading
import time
from typing import Any

import openai
import pytest

from tests.attribution.conftest import INTERVAL, Rig, Start
from tests.attribution.load_nvml import START_MJ
from tests.support.metrics import scrape
from tests.support.sdk import closing
from tests.support.wait import eventually, wait_for

ENERGY = "infermeter_gpu_attributed_energy_joules_total"
SECONDS = "infermeter_gpu_attributed_seconds_total"


def streams(rig: Any, *tenants: str) -> None:
    """One stream per tenant named (a tenant named twice streams twice), all started at once;
    returns when all are read to the end."""
    client = closing(openai.OpenAI(base_url=rig.proxy.url + "/v1", api_key="k", max_retries=0))
    go = threading.Barrier(len(tenants))

    def one(tenant: str) -> None:
        go.wait()
        chunks = client.chat.completions.create(model="m", messages=[{"role": "user", "content": "hello there"}],
                                                stream=True, extra_headers={"x-tenant": tenant})
        assert sum(1 for c in chunks if c.choices and c.choices[0].delta.content) == 30

    threads = [threading.Thread(target=one, args=(tenant,)) for tenant in tenants]
    for t in threads:
        t.start()
    for t in threads:
        t.join(30)


def conserved(rig: Rig, start_j: float = START_MJ / 1000) -> bool:
    data = scrape(rig.proxy.url)
    split = data.get(ENERGY) + (data.get("infermeter_gpu_unattributed_energy_joules_total"))
    rise = data.get("infermeter_gpu_energy_joules_total") - start_j
    return rise > 0 and abs(split - rise) <= 0.005 * rise


def test_two_tenants_share_by_their_tokens_and_the_log_lines_agree(rig: Start) -> None:
    r = rig()
    assert eventually(lambda: scrape(r.proxy.url).value("infermeter_gpu_unattributed_energy_joules_total") is not None)
    streams(r, "alpha", "beta", "beta")
    # Each line is written once its request's last interval is settled.
    wait_for(lambda: len(r.lines()) == 3, "three request log lines", timeout=5 * INTERVAL + 5)
    data = scrape(r.proxy.url)
    alpha = data.value(ENERGY, tenant="alpha", model="m")
    beta = data.value(ENERGY, tenant="beta", model="m")
    assert alpha and beta
    assert 1.8 <= beta / alpha <= 2.2, (alpha, beta)
    busy_a = data.value(SECONDS, tenant="alpha", model="m")
    busy_b = data.value(SECONDS, tenant="beta", model="m")
    assert busy_a and busy_b and 1.8 <= busy_b / busy_a <= 2.2
    by_tenant: dict[str, float] = {}
    for line in r.lines():
        assert line["gpu_seconds"] > 0 and line["energy_joules"] > 0
        by_tenant[line["tenant"]] = by_tenant.get(line["tenant"], 0.0) + line["energy_joules"]
    assert by_tenant["alpha"] == pytest.approx(alpha, rel=1e-4)
    assert by_tenant["beta"] == pytest.approx(beta, rel=1e-4)
    assert eventually(lambda: conserved(r), timeout=2)


def test_nothing_in_flight_is_all_unattributed(rig: Start) -> None:
    r = rig()
    streams(r, "alpha")
    wait_for(lambda: len(r.lines()) == 1, "the request log line", timeout=5)
    before = scrape(r.proxy.url)
    time.sleep(20 * INTERVAL)
    after = scrape(r.proxy.url)
    assert after.value(ENERGY, tenant="alpha", model="m") == before.value(ENERGY, tenant="alpha", model="m")
    idle = after.get("infermeter_gpu_unattributed_energy_joules_total") - before.get("infermeter_gpu_unattributed_energy_joules_total")
    # 50 W for about two seconds, as the energy counter rose (each scrape may see the split
    # one interval, 5 J, ahead of the counter).
    rise = after.get("infermeter_gpu_energy_joules_total") - before.get("infermeter_gpu_energy_joules_total")
    assert 80 <= idle <= 160 and abs(idle - rise) <= 10.5
    assert eventually(lambda: conserved(r), timeout=2)


def test_without_an_energy_counter_power_times_time_is_split(rig: Start, caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.INFO, "infermeter")
    r = rig(energy_supported=False)
    streams(r, "alpha")
    wait_for(lambda: len(r.lines()) == 1, "the request log line", timeout=5)
    assert any("from power x time on GPU(s) 0" in m for m in caplog.messages)
    assert r.lines()[0]["energy_joules"] > 0
    # The energy series is the collector's own integral, from 0 at its first read.
    assert eventually(lambda: conserved(r, start_j=0.0), timeout=2)


def test_a_shared_gpu_gives_only_the_upstreams_share(rig: Start) -> None:
    # The upstream holds 3 GiB, another process 1 GiB; no idle draw, so all the energy is the load's.
    r = rig(other_bytes=1024**3, idle_w=0.0)
    streams(r, "alpha", "alpha")
    wait_for(lambda: len(r.lines()) == 2, "the request log lines", timeout=5)
    assert eventually(lambda: conserved(r), timeout=2)
    data = scrape(r.proxy.url)
    attributed = data.get(ENERGY, tenant="alpha", model="m")
    rise = data.get("infermeter_gpu_energy_joules_total") - START_MJ / 1000
    # Never more than the upstream's 3/4; less only by an interval where the simulator still
    # drew power after the proxy's requests had ended.
    assert 0.6 * rise <= attributed <= 0.75 * rise * 1.001, (attributed, rise)
