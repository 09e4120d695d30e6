"""``serve --workers N`` end to end: exact merged counts, one set of host series, exemplars,
promtool, the model cap, the proxy's own paths and a graceful stop."""

from __future__ import annotations

import asyncio
import os
import shutil
import signal
import subprocess
from pathlib import Path

import httpx
import psutil
import pytest

from tests.support.metrics import Scrape, scrape
from tests.support.wait import wait_for
from tests.support.servers import free_port
from tests.workers.conftest import Sent, mixed_load, settled, simulator, worker_pids, workers_proxy

PROMTOOL = shutil.which("promtool")
OPENMETRICS = {"accept": "application/openmetrics-text; version=1.0.0"}
ROUNDS = 12
TOKENS = 8


def _matches(m: Scrape, sent: Sent) -> bool:
    total = sum(sent.counts.values())
    return (m.get("infermeter_requests_total") == total
            and all(m.get("infermeter_requests_total", endpoint=e, outcome=o) == n for (e, o), n in sent.counts.items())
            and m.get("infermeter_requests_in_flight") == 0)


@pytest.mark.parametrize("workers", [2, 4])
def test_every_counter_equals_what_was_sent(workers: int) -> None:
    with simulator("--ttft", "0.02", "--tbt", "0.02", "--output-tokens", str(TOKENS)) as sim, \
         workers_proxy(sim.url, workers) as proxy:
        sent = Sent()
        asyncio.run(mixed_load(proxy.url, ROUNDS, 16, sent))
        assert not sent.failed, sent.failed
        m = settled(proxy.url, lambda m: _matches(m, sent), f"merged counts equal {sent.counts}")
        assert m.get("infermeter_requests_total", endpoint="chat_completions", outcome="cancelled") == ROUNDS
        assert m.get("infermeter_tokens_total", endpoint="completions", type="output") == ROUNDS * TOKENS
        assert m.get("infermeter_tokens_total", endpoint="chat_completions", type="output") >= ROUNDS * TOKENS
        assert m.get("infermeter_time_to_first_token_seconds_count", endpoint="chat_completions") >= ROUNDS
        assert m.get("infermeter_workers") == workers
        # Host series come from the supervisor alone: one sample each, not one per worker.
        assert len(m.series("infermeter_host_memory_total_bytes")) == 1
        assert m.get("infermeter_host_memory_total_bytes") == psutil.virtual_memory().total
        assert len(m.series("infermeter_collector_success")) == 1
        assert len(m.series("infermeter_build_info")) == 1 and len(m.series("process_start_time_seconds")) == 1
        assert m.get("process_start_time_seconds") == psutil.Process(proxy.pid).create_time()
        # Exemplars survive the merge: OpenMetrics carries request ids of this load.
        om = httpx.get(proxy.url + "/metrics", headers=OPENMETRICS, timeout=10)
        assert om.headers["content-type"].startswith("application/openmetrics-text")
        for family in ("infermeter_time_to_first_token_seconds", "infermeter_request_duration_seconds"):
            assert any(line.startswith(family + "_bucket") and '# {request_id="req-' in line
                       for line in om.text.splitlines()), family
        if PROMTOOL is not None or os.environ.get("CI"):
            assert PROMTOOL is not None, "promtool missing in CI"
            text = httpx.get(proxy.url + "/metrics", timeout=10).text
            check = subprocess.run([PROMTOOL, "check", "metrics"], input=text.encode(), capture_output=True, timeout=30)
            assert check.returncode == 0, check.stdout.decode() + check.stderr.decode()


def test_max_models_holds_across_workers() -> None:
    with simulator("--ttft", "0", "--tbt", "0", "--output-tokens", "1") as sim, \
         workers_proxy(sim.url, 2, "--max-models", "3") as proxy:
        with httpx.Client(base_url=proxy.url, limits=httpx.Limits(max_keepalive_connections=0)) as client:
            for i in range(12):
                body = {"model": f"model-{i}", "messages": [], "max_tokens": 1}
                client.post("/v1/chat/completions", json=body).raise_for_status()
        m = settled(proxy.url, lambda m: m.get("infermeter_requests_total") == 12, "12 requests counted")
        models = {s["model"] for s in m.series("infermeter_requests_total")}
        assert models == {"model-0", "model-1", "model-2", "other"}
        assert m.get("infermeter_requests_total", model="other") == 9


def test_own_paths_with_admin_prefix_metrics_port_and_token() -> None:
    metrics_port = free_port()
    with simulator() as sim, workers_proxy(sim.url, 2, "--admin-prefix", "/im", "--metrics-token", "s3cret",
                                                  ready_path="/im/healthz") as proxy:
        assert httpx.get(proxy.url + "/im/readyz").json() == {"status": "ready", "upstream": "up"}
        assert httpx.get(proxy.url + "/im/metrics").status_code == 401
        auth = {"Authorization": "Bearer s3cret"}
        assert "infermeter_workers 2.0" in httpx.get(proxy.url + "/im/metrics", headers=auth).text
        # The scheme is case-insensitive (RFC 9110), the token is not.
        assert httpx.get(proxy.url + "/im/metrics", headers={"Authorization": "bearer s3cret"}).status_code == 200
        assert httpx.get(proxy.url + "/im/metrics", headers={"Authorization": "bearer S3CRET"}).status_code == 401
        # The upstream's own /metrics stays reachable beside the prefixed one.
        assert "infermeter_workers" not in httpx.get(proxy.url + "/metrics").text
    with simulator() as sim, workers_proxy(sim.url, 2, "--metrics-port", str(metrics_port)) as proxy:
        httpx.post(proxy.url + "/v1/completions", json={"model": "m", "prompt": "x"}).raise_for_status()
        url = f"http://127.0.0.1:{metrics_port}"
        settled(url, lambda m: m.get("infermeter_requests_total", endpoint="completions") == 1, "counted on --metrics-port")
        assert "infermeter_workers" not in httpx.get(proxy.url + "/metrics").text


def test_sigterm_stops_every_worker_gracefully() -> None:
    with simulator() as sim, workers_proxy(sim.url, 2) as proxy:
        pids = worker_pids(proxy)
        assert proxy.proc is not None
        proxy.proc.send_signal(signal.SIGTERM)
        assert proxy.proc.wait(timeout=30) == 0
        wait_for(lambda: not any(psutil.pid_exists(p) and psutil.Process(p).status() != psutil.STATUS_ZOMBIE for p in pids),
             "workers gone")


def _private_dirs(parent: Path) -> set[str]:
    return {p.name for p in parent.iterdir() if p.name.startswith("infermeter-")}


def test_a_supervisor_killed_leaves_its_directory_to_the_next_start(tmp_path: Path) -> None:
    """SIGKILL skips every cleanup: the next supervisor to start removes what it left (issue 18)."""
    env = {"TMPDIR": str(tmp_path)}
    with simulator() as sim:
        with workers_proxy(sim.url, 2, env=env) as first:
            (left,) = _private_dirs(tmp_path)
            assert left.startswith(f"infermeter-{first.pid}-")
            assert os.path.exists(tmp_path / left / "supervisor.sock")
            workers = worker_pids(first)
            os.kill(first.pid, signal.SIGKILL)
            # Its workers see the channel close and go too.
            wait_for(lambda: not any(psutil.pid_exists(p) for p in workers), "the orphaned workers gone")
            assert _private_dirs(tmp_path) == {left}
        with workers_proxy(sim.url, 2, env=env) as second:
            (mine,) = _private_dirs(tmp_path)
            assert mine.startswith(f"infermeter-{second.pid}-")
            # A live supervisor's directory is never taken for a dead one's.
            with workers_proxy(sim.url, 2, env=env) as third:
                assert {d.split("-")[1] for d in _private_dirs(tmp_path)} == {str(second.pid), str(third.pid)}
    assert not _private_dirs(tmp_path)
