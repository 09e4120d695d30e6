"""GPU attribution with ``--workers 2``: the supervisor reads the (fake) GPU, the workers hold
the requests, and the split still gives 2:1 and conserves the energy counter's rise."""

from __future__ import annotations

import json
import os
from pathlib import Path

from tests.attribution.load_nvml import SITECUSTOMIZE, START_MJ
from tests.attribution.test_split import ENERGY, streams
from tests.support.metrics import scrape
from tests.support.servers import REPO, ChildProcess, free_port, simulator_server
from tests.support.wait import eventually, wait_for


class _Proxy:
    def __init__(self, url: str) -> None:
        self.url = url


class _Rig:
    def __init__(self, url: str) -> None:
        self.proxy = _Proxy(url)


def test_workers_split_at_one_rate_and_conserve(tmp_path: Path) -> None:
    site = tmp_path / "site"
    site.mkdir()
    (site / "sitecustomize.py").write_text(SITECUSTOMIZE)
    log = tmp_path / "requests.log"
    with simulator_server(ttft=0.05, tbt=0.03, output_tokens=30) as sim:
        port = free_port()
        args = ["serve", "--upstream", sim.url, "--port", str(port), "--workers", "2", "--collectors", "gpu",
                "--sample-interval", "0.1", "--upstream-pid", str(os.getpid()), "--tenant-header", "x-tenant",
                "--request-log", str(log), "--log-level", "warning"]
        env = {"PYTHONPATH": f"{site}{os.pathsep}{REPO}", "ATTRIBUTION_SIM_URL": sim.url,
               "ATTRIBUTION_UPSTREAM_PID": str(os.getpid())}
        with ChildProcess(args, port=port, env=env, log=tmp_path / "child.log") as proxy:
            assert eventually(lambda: scrape(proxy.url).get("infermeter_gpu_energy_joules_total") > 0)
            rig = _Rig(proxy.url)

            def lines() -> list[dict[str, object]]:
                return [json.loads(x) for x in log.read_text().splitlines()] if log.exists() else []

            def rounds(n: int) -> list[dict[str, object]]:
                """``n`` rounds of alpha's one stream beside beta's two; their log lines."""
                start = len(lines())
                for _ in range(n):
                    streams(rig, "alpha", "beta", "beta")
                wait_for(lambda: len(lines()) == start + 3 * n, "the rounds' request log lines", timeout=10)
                return lines()[start:]

            # A worker is split over from the supervisor's first read after it started; until
            # then its requests carry no share (their lines no gpu_seconds). Wait for both.
            assert eventually(lambda: all("energy_joules" in line for line in rounds(1)), timeout=20, step=0)
            before = scrape(proxy.url)
            # Several rounds, so that both workers hold requests (the kernel spreads connections).
            measured = rounds(3)
            assert all("energy_joules" in line for line in measured)

            def conserved() -> bool:
                data = scrape(proxy.url)
                split = data.get(ENERGY) + data.get("infermeter_gpu_unattributed_energy_joules_total")
                rise = data.get("infermeter_gpu_energy_joules_total") - START_MJ / 1000
                return rise > 0 and abs(split - rise) <= 0.005 * rise

            ok = eventually(conserved, timeout=5)
            data = scrape(proxy.url)
            assert ok, (data.get(ENERGY), data.get("infermeter_gpu_unattributed_energy_joules_total"),
                        data.get("infermeter_gpu_energy_joules_total") - START_MJ / 1000)
            alpha = data.get(ENERGY, tenant="alpha") - before.get(ENERGY, tenant="alpha")
            beta = data.get(ENERGY, tenant="beta") - before.get(ENERGY, tenant="beta")
            assert alpha > 0 and 1.8 <= beta / alpha <= 2.2, (alpha, beta)
