"""Micro-benchmark: what several workers cost per chunk, and per scrape, two ways.

    python bench/worker_cost.py [--ops 200000] [--repeat 5]

Per chunk a worker does one bound histogram ``observe`` (a token gap) and, per request,
a few counter ``inc``. With our design (each worker keeps its own in-process registry;
the supervisor merges snapshots on scrape) those are prometheus-client's plain in-memory
updates, exactly as with one process. prometheus-client's multiprocess mode instead
writes every update into an mmap'd file under a lock; it is measured here in a child
process started with ``PROMETHEUS_MULTIPROC_DIR`` set (a private, fresh directory), as
that mode must be chosen before prometheus_client is imported.

Per scrape (not per chunk): encoding a worker's registry after traffic on every
endpoint for 4 models, decoding it, and merging 4 workers. Best of ``--repeat`` runs.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]


def _best(fn: Callable[[], None], ops: int, repeat: int) -> float:
    """Nanoseconds per operation, best of ``repeat``."""
    best = float("inf")
    for _ in range(repeat):
        started = time.perf_counter_ns()
        fn()
        best = min(best, (time.perf_counter_ns() - started) / ops)
    return best


def hot_path(ops: int, repeat: int) -> dict[str, float]:
    from prometheus_client import CollectorRegistry, Counter, Histogram

    from proxy.metrics import buckets

    registry = CollectorRegistry()
    tbt = Histogram("tbt_seconds", "gap", ("endpoint", "model"), buckets=buckets.INTER_TOKEN,
                    registry=registry).labels("chat_completions", "m")
    requests = Counter("requests", "requests", ("endpoint", "model"), registry=registry).labels("chat_completions", "m")

    def observe() -> None:
        for _ in range(ops):
            tbt.observe(0.02)

    def inc() -> None:
        for _ in range(ops):
            requests.inc()

    return {"observe_ns": _best(observe, ops, repeat), "inc_ns": _best(inc, ops, repeat)}


def _drop(_: object) -> None:
    return None


def scrape_side(repeat: int) -> dict[str, float]:
    from prometheus_client import CollectorRegistry

    from proxy.config import Settings
    from proxy.metrics.definitions import Metrics
    from proxy.metrics.recorder import Recorder
    from proxy.stream.endpoints import ENDPOINTS
    from proxy.stream.base import RequestInfo
    from proxy.timing import RequestRecord
    from proxy.workers.merge import Merger
    from proxy.workers.snapshot import decode, snapshot

    registry = CollectorRegistry()
    recorder = Recorder(Metrics(registry, Settings()), Settings())
    for endpoint in ENDPOINTS:
        for model in ("m1", "m2", "m3", "m4"):
            recorder.started(endpoint)
            now = time.perf_counter_ns()
            rec = RequestRecord(endpoint, now - 2_000_000_000, request=RequestInfo(model=model), stream=True, code=200,
                                t_headers=now - 1_900_000_000, t_first=now - 1_800_000_000, t_last=now - 1000, t_end=now)
            rec.gaps_ns.extend([20_000_000] * 30)
            recorder.record(rec)
    body = snapshot(registry)
    families = decode(body)
    merger = Merger()
    for worker in range(4):
        merger.update(worker, decode(body))
    timings = {
        "snapshot_ms": _best(lambda: _drop(snapshot(registry)), 1, repeat) / 1e6,
        "decode_ms": _best(lambda: _drop(decode(body)), 1, repeat) / 1e6,
        "merge_4_workers_ms": _best(lambda: _drop(merger.merged([])), 1, repeat) / 1e6,
    }
    samples = sum(len(f.samples) for f in families)
    return {**timings, "samples_per_worker": float(samples), "snapshot_bytes": float(len(body))}


def _child(mode: str, ops: int, repeat: int) -> dict[str, float]:
    env = {**os.environ, "PYTHONPATH": str(REPO)}
    with tempfile.TemporaryDirectory(prefix="infermeter-bench-mp-") as private:
        if mode == "multiprocess":
            env["PROMETHEUS_MULTIPROC_DIR"] = private
        else:
            env.pop("PROMETHEUS_MULTIPROC_DIR", None)
        out = subprocess.run([sys.executable, __file__, "--child", "--ops", str(ops), "--repeat", str(repeat)],
                             env=env, check=True, capture_output=True, text=True, cwd=REPO).stdout
    result: dict[str, float] = json.loads(out)
    return result


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--ops", type=int, default=200_000)
    parser.add_argument("--repeat", type=int, default=5)
    parser.add_argument("--child", action="store_true", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.child:
        print(json.dumps(hot_path(args.ops, args.repeat)))
        return
    sys.path.insert(0, str(REPO))
    plain = _child("registry", args.ops, args.repeat)
    mp = _child("multiprocess", args.ops, args.repeat)
    print("per chunk (bound child, best of runs)        observe     inc")
    print(f"  own registry per worker (this design)   {plain['observe_ns'] / 1e3:7.2f} µs {plain['inc_ns'] / 1e3:6.2f} µs")
    print(f"  prometheus-client multiprocess mode     {mp['observe_ns'] / 1e3:7.2f} µs {mp['inc_ns'] / 1e3:6.2f} µs")
    side = scrape_side(args.repeat)
    print(f"per scrape: a worker's registry ({side['samples_per_worker']:.0f} samples, "
          f"{side['snapshot_bytes'] / 1024:.0f} KiB): snapshot {side['snapshot_ms']:.1f} ms, "
          f"decode {side['decode_ms']:.1f} ms; merging 4 workers {side['merge_4_workers_ms']:.1f} ms")


if __name__ == "__main__":
    main()
