"""A simulator, a fake NVML driven by its load, and infermeter reading that GPU."""

from __future__ import annotations

import json
import os
import sys
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

from tests.attribution.load_nvml import LoadNvml, gpus_for
from tests.support.servers import ThreadServer, proxy_server, sidecar, simulator_server

INTERVAL = 0.1


class Rig:
    def __init__(self, sim: ThreadServer, proxy: ThreadServer, nvml: LoadNvml, log: Path) -> None:
        self.sim = sim
        self.proxy = proxy
        self.nvml = nvml
        self.log = log

    def lines(self) -> list[dict[str, Any]]:
        if not self.log.exists():
            return []
        return [json.loads(line) for line in self.log.read_text().splitlines() if line.strip()]


Start = Callable[..., Rig]


@pytest.fixture
def rig(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> Iterator[Start]:
    opened: list[Any] = []

    def start(other_bytes: int = 0, energy_supported: bool = True, idle_w: float = 50.0, **settings: Any) -> Rig:
        sim = simulator_server(ttft=0.05, tbt=0.03, output_tokens=30)
        opened.append(sim.__enter__())
        app: Any = sim.app
        nvml = LoadNvml(gpus_for(os.getpid(), 999_999 if other_bytes else None, other_bytes),
                        load=lambda: int(app.stats.active), idle_w=idle_w, energy_supported=energy_supported)
        # GpuCollector imports pynvml on its first read: this GPU is the one it finds.
        monkeypatch.setitem(sys.modules, "pynvml", nvml)
        log = tmp_path / "requests.log"
        settings.setdefault("tenant_header", "x-tenant")
        app_ = sidecar(sim.url, collectors=("gpu",), sample_interval=INTERVAL, upstream_pid=os.getpid(),
                       request_log=str(log), **settings)
        proxy = proxy_server(app_)
        opened.append(proxy.__enter__())
        return Rig(sim, proxy, nvml, log)

    yield start
    for server in reversed(opened):
        server.__exit__(None, None, None)
