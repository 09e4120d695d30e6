"""A real Prometheus (Debian's package) for tests: 127.0.0.1, a temp config and TSDB."""

from __future__ import annotations

import contextlib
import math
import time
from collections.abc import Callable, Iterator, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
import yaml

from tests.stack.tools import require
from tests.support.servers import ChildServer
from tests.support.wait import poll


class QueryError(Exception):
    """Prometheus rejected the query (a parse or evaluation error)."""


@dataclass(frozen=True)
class Prometheus:
    url: str
    log: Path

    def query(self, expr: str, at: float | None = None) -> list[float]:
        """Values of an instant query at now (or at unix time ``at``): one per series, or the scalar's one."""
        data = {"query": expr} if at is None else {"query": expr, "time": repr(at)}
        response = httpx.post(f"{self.url}/api/v1/query", data=data, timeout=10)
        body: dict[str, Any] = response.json()
        if body.get("status") != "success":
            raise QueryError(f"{body.get('errorType')}: {body.get('error')}")
        data = body["data"]
        if data["resultType"] == "vector":
            return [float(sample["value"][1]) for sample in data["result"]]
        if data["resultType"] == "scalar":
            return [float(data["result"][1])]
        raise QueryError(f"unexpected result type {data['resultType']}")

    def wait(self, expr: str, ok: Callable[[list[float]], bool], timeout: float) -> list[float]:
        """Query ``expr`` until ``ok`` holds for its values or ``timeout`` passes; the last values."""
        return poll(lambda: self.query(expr), ok, timeout, step=0.2)

    def finite(self, expr: str, at: float | None = None) -> list[float]:
        return [v for v in self.query(expr, at) if math.isfinite(v)]

    def wait_for_first_scrape(self, timeout: float = 20.0) -> None:
        """Prometheus applies its targets on a 5 s tick after it reports ready: wait until
        every target has been scraped once, so traffic sent afterwards is seen rising."""
        deadline = time.monotonic() + timeout
        while True:
            targets = httpx.get(f"{self.url}/api/v1/targets", timeout=10).json()["data"]["activeTargets"]
            if targets and all(t["health"] == "up" for t in targets):
                return
            if time.monotonic() > deadline:
                raise RuntimeError(f"targets not scraped within {timeout} s: {targets}")
            time.sleep(0.1)

    def rules(self) -> list[dict[str, Any]]:
        body = httpx.get(f"{self.url}/api/v1/rules", timeout=10).json()
        return [rule for group in body["data"]["groups"] for rule in group["rules"]]


@contextlib.contextmanager
def run_prometheus(workdir: Path, job: str, targets: Sequence[str], rule_files: Sequence[Path],
                   interval: str = "1s", more_jobs: Mapping[str, Sequence[str]] | None = None,
                   flags: Sequence[str] = ()) -> Iterator[Prometheus]:
    """``more_jobs``: further scrape jobs by name, e.g. an engine's own /metrics beside the proxy's.
    ``flags``: more command-line flags, e.g. ``--enable-feature=exemplar-storage``."""
    binary = require("prometheus")
    jobs = {job: targets, **(more_jobs or {})}
    config = {
        "global": {"scrape_interval": interval, "scrape_timeout": interval, "evaluation_interval": interval},
        "rule_files": [str(path) for path in rule_files],
        "scrape_configs": [{"job_name": name, "static_configs": [{"targets": list(t)}]} for name, t in jobs.items()],
    }
    config_path = workdir / "prometheus.yml"
    config_path.write_text(yaml.safe_dump(config), encoding="utf-8")
    log = workdir / "prometheus.log"
    with ChildServer([str(binary), f"--config.file={config_path}", f"--storage.tsdb.path={workdir / 'tsdb'}",
                      "--web.listen-address=127.0.0.1:{port}", "--log.level=warn", *flags],
                     ready_path="/-/ready", log=log) as server:
        prometheus = Prometheus(server.url, log)
        prometheus.wait_for_first_scrape()
        yield prometheus
