"""``infermeter demo``: the simulator, the proxy in front of it, a gentle mixed load, and a
live summary read from the proxy's own metrics, so a newcomer sees real numbers at once."""

from __future__ import annotations

import asyncio
import contextlib
import random
import socket
import subprocess
import sys
import time
from collections.abc import Iterator

import httpx
from prometheus_client import CollectorRegistry

from proxy.children import stop, wait_http_ok
from proxy.config import Settings
from proxy.demo.load import client_loop
from proxy.demo.quantiles import HistogramWindow, counter_total, gauge_total
from proxy.demo.signals import stop_on_sigterm, wait_for_stop
from proxy.server import SideServer, uvicorn_config

SIM_ARGS = ["--ttft", "0.15", "--tbt", "0.02", "--jitter", "0.3", "--output-tokens", "48", "--seed", "7"]
# Percentiles in the summary cover this many seconds, like a rate(...[30s]) in Grafana:
# enough requests for a stable p99 (about 200 at the demo's pace), short enough to move.
SUMMARY_WINDOW = 30.0
def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@contextlib.contextmanager
def _simulator(port: int) -> Iterator[str]:
    proc = subprocess.Popen([sys.executable, "-m", "proxy", "simulate", "--port", str(port), "--log-level", "warning",
                             *SIM_ARGS])
    url = f"http://127.0.0.1:{port}"
    try:
        wait_http_ok(url + "/health", proc=proc)
        yield url
    finally:
        stop(proc, timeout=5)


def _line(registry: CollectorRegistry, windows: dict[str, HistogramWindow], last: dict[str, float], dt: float) -> str:
    requests = counter_total(registry, "infermeter_requests")
    tokens = counter_total(registry, "infermeter_tokens", {"type": "output"})
    rps = (requests - last.get("req", 0.0)) / dt
    tps = (tokens - last.get("tok", 0.0)) / dt
    last["req"], last["tok"] = requests, tokens
    ttft, tbt = windows["ttft"].advance(registry), windows["tbt"].advance(registry)

    def ms(q: float | None) -> str:
        return "   -  " if q is None else f"{q * 1000:6.1f}"

    return (f"req/s {rps:5.1f} | TTFT p50 {ms(ttft.quantile(0.5))} p99 {ms(ttft.quantile(0.99))} ms | "
            f"TBT p50 {ms(tbt.quantile(0.5))} p99 {ms(tbt.quantile(0.99))} ms | "
            f"output tok/s {tps:6.1f} | in flight {gauge_total(registry, 'infermeter_requests_in_flight'):3.0f}")


async def run_demo(port: int, sim_port: int, concurrency: int, interval: float, duration: float) -> int:
    from proxy.app import create_app

    stop = asyncio.Event()
    with stop_on_sigterm(stop), _simulator(sim_port or _free_port()) as upstream:
        settings = Settings(upstream=upstream, port=port, log_level="warning")
        app = create_app(settings)
        server = SideServer(uvicorn_config(app, settings.host, settings.port, "warning"))
        server_task = asyncio.ensure_future(server.serve())
        while not server.started:
            if server_task.done():
                raise RuntimeError(f"the proxy could not listen on port {port} (try --port 0 or another port)")
            await asyncio.sleep(0.05)
        bound = server.servers[0].sockets[0].getsockname()[1]
        print(f"infermeter demo: simulator {upstream} <- proxy http://127.0.0.1:{bound}")
        print(f"  metrics: http://127.0.0.1:{bound}/metrics   (Ctrl-C to stop)")
        print(f"  percentiles over the last {SUMMARY_WINDOW:.0f} s")
        client = httpx.AsyncClient(base_url=f"http://127.0.0.1:{bound}", timeout=30,
                                   limits=httpx.Limits(max_connections=concurrency * 2))
        loops = [asyncio.ensure_future(client_loop(client, random.Random(i), stop)) for i in range(concurrency)]
        windows = {"ttft": HistogramWindow("infermeter_time_to_first_token_seconds", SUMMARY_WINDOW),
                   "tbt": HistogramWindow("infermeter_time_between_tokens_seconds", SUMMARY_WINDOW)}
        last: dict[str, float] = {}
        started = time.monotonic()
        try:
            while not stop.is_set() and (not duration or time.monotonic() - started < duration):
                await wait_for_stop(stop, interval)
                if not stop.is_set():
                    print(_line(app.registry, windows, last, interval), flush=True)
        finally:
            stop.set()
            for task in loops:
                task.cancel()
            await asyncio.gather(*loops, return_exceptions=True)
            await client.aclose()
            server.should_exit = True
            await server_task
    return 0
