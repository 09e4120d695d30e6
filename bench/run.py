"""The overhead benchmark: direct vs infermeter (native, --observe false, httpx) vs nginx.

    python bench/run.py                      # the full run, a few minutes on 2 cores
    python bench/run.py --quick              # a smoke run in well under a minute
    python bench/run.py --json out.json      # the machine-readable report (default bench/results/latest.json)
    python bench/run.py --drilldown          # tracing on, request log on, both off: side by side
    python bench/run.py --cost               # CPU per request and per chunk against nginx, every shape


One simulator serves every path; each path is a child process on 127.0.0.1. Paths are
measured in rotating blocks, several rounds each, so noise from the rest of the machine
falls on all of them alike. See docs/benchmark.md for what each number means.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import math
import os
import platform
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from bench import report  # noqa: E402
from bench.memory import rss_profile  # noqa: E402
from bench.procs import (  # noqa: E402
    Nginx,
    Server,
    floor,
    free_port,
    infermeter,
    nginx_binary,
    otlp_sink,
    simulator,
    tracing_env,
)
from bench.scenario import EMBEDDING_DIMENSIONS, Load, Result, quiesce, run  # noqa: E402

HOST = "127.0.0.1"
TARGET_P99_MS = 5.0
# Past this added TTFT p99 a level is clearly beyond what the relay holds: stop the sweep.
SATURATED_MS = 100.0
# Helpers a path needs (the tracing path's OTLP receiver), stopped with the run.
_HELPERS: list[Server] = []
DRILLDOWN_PATHS = "infermeter,tracing,request-log"
COST_PATHS = "infermeter,nginx"
DEFAULT_SWEEP = "100,200,300,400,600,800,1000"
DEFAULT_PATHS = "infermeter,observe-false,httpx,nginx"
# DESIGN.md section 10: in every shape, against nginx in the same run.
CPU_PER_REQUEST_VS_NGINX = 1.5
CPU_PER_CHUNK_VS_NGINX = 1.75
ADDED_TTFT_P99_MS = 2.0


def _shapes(args: argparse.Namespace) -> dict[str, tuple[str, Load]]:
    """The shapes besides the long kept-alive streams, each at ``--shape-rate`` requests/s.

    20-token streams and answers at TTFT 20 ms and TBT 20 ms take 0.4 s, so the open
    count is the rate times 0.4; embeddings answer after the 20 ms prefill."""
    rate, window, short = args.shape_rate, args.window, 20
    open_count = max(1, round(rate * (0.02 + (short - 1) * 0.02)))
    return {
        "short-fresh": (f"{short}-token streams, a new client connection each, {rate:g}/s (~{open_count} open)",
                        Load(open_count, 0.02, 0.02, short, window, fresh=True)),
        "plain": (f"non-streaming chat, {short} tokens in one JSON answer, kept-alive, {rate:g}/s",
                  Load(open_count, 0.02, 0.02, short, window, kind="plain")),
        "embeddings": (f"/v1/embeddings, {EMBEDDING_DIMENSIONS} dimensions base64, kept-alive, {rate:g}/s",
                       Load(max(1, round(rate * 0.02)), 0.02, 0.0, 0, window, rate=rate, kind="embeddings")),
    }


def _tracing(sim: Server) -> Server:
    sink = otlp_sink(free_port()).start()
    _HELPERS.append(sink)
    return infermeter("tracing", sim.url, free_port(), env=tracing_env(sink))


def _request_log(sim: Server) -> Server:
    fd, path = tempfile.mkstemp(prefix="infermeter-bench-", suffix=".jsonl")
    os.close(fd)
    return infermeter("request-log", sim.url, free_port(), "--request-log", path)


def _judge_hang(sim: Server) -> Server:
    """Checks on and every answer sent to a judge that never answers (a simulator whose first
    token is an hour away): the relay must not notice (DESIGN.md section 15)."""
    port = free_port()
    judge = Server("hanging-judge", [sys.executable, "-m", "proxy", "simulate", "--port", str(port),
                                     "--ttft", "3600", "--log-level", "warning"], port, "/health").start()
    _HELPERS.append(judge)
    return infermeter("judge-hang", sim.url, free_port(), "--eval-url", judge.url, "--eval-model", "judge",
                      "--eval-sample", "1", "--eval-timeout", "600")


def _base(sim: Server) -> Server:
    base = os.environ.get("INFERMETER_BENCH_BASE")
    if not base:
        raise SystemExit("the 'base' path needs INFERMETER_BENCH_BASE=<an earlier checkout's directory>")
    port = free_port()
    args = [sys.executable, "-m", "proxy", "serve", "--upstream", sim.url, "--port", str(port), "--log-level", "warning"]
    return Server("base", args, port, "/healthz", cwd=Path(base), env={"PYTHONPATH": base})


def _paths(sim: Server, wanted: list[str]) -> dict[str, Server | None]:
    """name -> relay server (None: straight to the simulator)."""
    makers: dict[str, Callable[[], Server]] = {
        "infermeter": lambda: infermeter("infermeter", sim.url, free_port()),
        "observe-false": lambda: infermeter("observe-false", sim.url, free_port(), "--observe", "false"),
        "httpx": lambda: infermeter("httpx", sim.url, free_port(), "--upstream-client", "httpx"),
        "workers-2": lambda: infermeter("workers-2", sim.url, free_port(), "--workers", "2"),
        # uvicorn and the edge protocol answering at once, no relay: the per-request floor.
        "floor": lambda: floor(free_port()),
        "nginx": lambda: Nginx(sim.port, free_port()),
        # Drill-down costs (DESIGN.md section 10): each against "infermeter" with both off.
        "tracing": lambda: _tracing(sim),
        "request-log": lambda: _request_log(sim),
        # Response checks: all off (against "infermeter", where they are on by default), and on
        # with a judge that hangs, asked about every answer.
        "checks-none": lambda: infermeter("checks-none", sim.url, free_port(), "--checks", "none"),
        "judge-hang": lambda: _judge_hang(sim),
        # The same relay from an earlier checkout (INFERMETER_BENCH_BASE=its directory, e.g. a
        # `git worktree`): before and after a change, side by side in one run.
        "base": lambda: _base(sim),
    }
    # "direct-again" is the direct path measured a second time: its "added" numbers are the
    # noise floor of the comparison on this machine at this moment.
    paths: dict[str, Server | None] = {"direct": None, "direct-again": None}
    for name in wanted:
        if name == "nginx" and nginx_binary() is None:
            print("nginx not installed: skipping that path", file=sys.stderr)
            continue
        paths[name] = makers[name]().start()
    return paths


def _port(sim: Server, relay: Server | None) -> int:
    return sim.port if relay is None else relay.port


def _pids(sim: Server, relay: Server | None) -> dict[str, int]:
    pids = {"simulator": sim.pid}
    if relay is not None:
        pids["relay"] = relay.pid
    return pids


async def _measure(name: str, sim: Server, relay: Server | None, load: Load) -> Result:
    pids = _pids(sim, relay)
    await quiesce(pids)
    result = await run(name, HOST, _port(sim, relay), load, pids)
    print(f"  {name:<14} c={load.concurrency:<5} measured={result.measured:<5} errors={result.errors} "
          f"chunks={result.chunks}", file=sys.stderr, flush=True)
    return result


async def _compare(sim: Server, paths: dict[str, Server | None], load: Load, rounds: int) -> dict[str, Any]:
    """Every path under ``load``, rotated round by round; each compared with direct."""
    runs: dict[str, list[Result]] = {name: [] for name in paths}
    names = list(paths)
    for i in range(rounds):
        order = names[i % len(names):] + names[:i % len(names)]
        for name in order:
            runs[name].append(await _measure(name, sim, paths[name], Load(**{**load.__dict__, "seed": 100 * i + 7})))
    rows: dict[str, Any] = {}
    for name, rs in runs.items():
        relay = None if paths[name] is None else "relay"
        rows[name] = report.summary(report.merge(rs), relay)
        rows[name]["rounds"] = report.rounds(rs, relay)
    for name, row in rows.items():
        if name != "direct":
            row["added"] = report.added(row, rows["direct"])
        if "nginx" in rows and paths[name] is not None and name != "nginx":
            row["vs_nginx"] = report.against(row, rows["nginx"])
    return rows


async def _sweep(sim: Server, relay: Server, name: str, levels: list[int], load: Load, known: dict[int, Any]) -> dict[str, Any]:
    out: list[dict[str, Any]] = []
    best, best_rate = 0, 0.0
    for level in levels:
        if level in known:
            direct, path = known[level]
        else:
            at = Load(**{**load.__dict__, "concurrency": level, "seed": level})
            direct = report.summary(await _measure("direct", sim, None, at), None)
            path = report.summary(await _measure(name, sim, relay, at), "relay")
        add = report.added(path, direct)
        ttft99 = add["ttft_ms"]["p99"]
        tbt99 = add["tbt_ms"]["p99"]
        ok = (path["errors"] == 0 and path["no_first_token"] == 0 and ttft99 is not None and tbt99 is not None
              and not math.isinf(ttft99) and ttft99 < TARGET_P99_MS and tbt99 < TARGET_P99_MS)
        out.append({"concurrency": level, "added_ttft_p99_ms": ttft99, "added_tbt_p99_ms": tbt99,
                    "added_ttft_p50_ms": add["ttft_ms"]["p50"], "errors": path["errors"],
                    "chunks_per_s": path["chunks_per_s"], "relay_cpu_cores": path["cpu_cores"].get("relay"),
                    "machine_busy_cores": path["machine_busy_cores"], "ok": ok})
        if ok and best == (out[-2]["concurrency"] if len(out) > 1 else 0):
            best, best_rate = level, path["chunks_per_s"]
        saturated = path["errors"] or ttft99 is None or math.isinf(ttft99) or ttft99 > SATURATED_MS
        if saturated:
            break
    return {"path": name, "levels": out, "max_concurrency_ok": best, "chunks_per_s_there": best_rate}


def _loadgen_verdict(rows: dict[str, Any]) -> dict[str, Any]:
    """Is the load generator what limits the run? Its own CPU says whether it could keep up;
    its send lag and the direct path's lateness say whether the machine let it."""
    direct = rows["direct"]
    worst_cpu = max(row["loadgen_cpu_cores"] for row in rows.values())
    lag99 = max((row["send_lag_ms"]["p99"] or 0.0) for row in rows.values())
    late99 = direct.get("chunk_lateness_ms", {}).get("p99")
    others = max(row["other_processes_cores"] for row in rows.values())
    own_ok = worst_cpu < 0.6
    machine_ok = lag99 < 2.0 and late99 is not None and late99 < 5.0
    if own_ok and machine_ok:
        verdict = "not the bottleneck"
    elif own_ok:
        verdict = (f"not the bottleneck itself, but the machine is busy (other processes up to {others:.2f} cores): "
                   "latency percentiles are noisy")
    else:
        verdict = "LOAD GENERATOR NEAR SATURATION: numbers understate what the paths can do"
    verdict += (f" [loadgen at most {worst_cpu:.2f} cores, send lag p99 {lag99:.2f} ms, "
                f"direct-path chunk lateness p99 {late99} ms]")
    return {"loadgen_cpu_cores_max": worst_cpu, "send_lag_p99_ms_max": lag99, "direct_lateness_p99_ms": late99,
            "other_processes_cores_max": others, "loadgen_ok": own_ok, "machine_quiet": machine_ok, "verdict": verdict}


def _targets(rep: dict[str, Any]) -> dict[str, Any]:
    paths = rep["realistic"]["paths"]
    ours = paths.get("infermeter", {})
    add = ours.get("added", {}).get("ttft_ms", {})
    floor = paths.get("direct-again", {}).get("added", {}).get("ttft_ms", {})
    drill = _drilldown_costs(paths)
    out: dict[str, Any] = {
        **({"drilldown_cpu_per_chunk_vs_off": drill} if drill else {}),
        "noise_floor_ttft_ms": floor,
        "added_ttft_p50_le_1ms": add.get("p50") is not None and add["p50"] <= 1.0,
        "added_ttft_p99_le_5ms": add.get("p99") is not None and add["p99"] <= 5.0,
    }
    if "nginx" in paths and ours.get("relay_cpu_us_per_chunk") and paths["nginx"].get("relay_cpu_us_per_chunk"):
        ratio = ours["relay_cpu_us_per_chunk"] / paths["nginx"]["relay_cpu_us_per_chunk"]
        out["cpu_per_chunk_vs_nginx"] = round(ratio, 2)
        out["cpu_per_chunk_within_3x_nginx"] = ratio <= 3.0
    out["added_ttft_p99_le_2ms"] = add.get("p99") is not None and add["p99"] <= ADDED_TTFT_P99_MS
    shapes = {"long": rep["realistic"], **rep.get("shapes", {})}
    vs = {shape: block["paths"].get("infermeter", {}).get("vs_nginx") for shape, block in shapes.items()}
    if any(vs.values()):
        out["cpu_vs_nginx_by_shape"] = {
            shape: {"per_request": v["per_request"], "per_chunk": v["per_chunk"],
                    "per_request_le_1.5x": v["per_request"] is not None and v["per_request"] <= CPU_PER_REQUEST_VS_NGINX,
                    "per_chunk_le_1.75x": v["per_chunk"] is not None and v["per_chunk"] <= CPU_PER_CHUNK_VS_NGINX}
            for shape, v in vs.items() if v}
    memory = rep.get("memory", {}).get("infermeter")
    if memory and memory["bytes_per_stream"]:
        worst = max(memory["bytes_per_stream"].values())
        out["rss_per_stream_kib"] = round(worst / 1024, 1)
        out["rss_per_stream_le_50kb"] = worst <= 50_000
    return out


def _drilldown_costs(paths: dict[str, Any]) -> dict[str, Any]:
    """CPU per chunk of tracing and of the request log, each relative to both off."""
    off = paths.get("infermeter", {}).get("relay_cpu_us_per_chunk")
    out: dict[str, Any] = {}
    for name in ("tracing", "request-log"):
        on = paths.get(name, {}).get("relay_cpu_us_per_chunk")
        if off and on:
            added = (on - off) / off
            out[name] = {"us_per_chunk_off": off, "us_per_chunk_on": on, "added_pct": round(100 * added, 1),
                         "within_15pct": added <= 0.15}
    return out


async def main_async(args: argparse.Namespace) -> dict[str, Any]:
    sim = simulator(free_port()).start()
    started = time.time()
    paths: dict[str, Server | None] = {}
    rep: dict[str, Any] = {"command": " ".join(sys.argv), "host": platform.node(), "python": platform.python_version(),
                           "started": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(started))}
    try:
        paths = _paths(sim, args.paths.split(","))
        realistic = Load(args.concurrency, 0.02, 0.02, 200, args.window)
        # Warm every path up (connections, imports, caches) before anything counts.
        for name, relay in paths.items():
            await run(name, HOST, _port(sim, relay), Load(20, 0.0, 0.0, 50, 1.0, rate=40.0), _pids(sim, relay))
        print("realistic", file=sys.stderr)
        rows = await _compare(sim, paths, realistic, args.rounds)
        rep["realistic"] = {"describe": f"{args.concurrency} open streams, TTFT 20 ms, TBT 20 ms, 200 tokens, "
                                        f"Poisson arrivals, {args.rounds} x {args.window:g} s per path",
                            "paths": rows}
        rep["loadgen_check"] = _loadgen_verdict(rows)
        wanted = [s for s in args.shapes.split(",") if s]
        if wanted:
            rep["shapes"] = {}
            shapes = _shapes(args)
            for shape in wanted:
                describe, load = shapes[shape]
                print(shape, file=sys.stderr)
                rep["shapes"][shape] = {"describe": f"{describe}, {args.rounds} x {args.window:g} s per path",
                                        "paths": await _compare(sim, paths, load, args.rounds)}
        if args.flat_rate > 0:
            print("flat out", file=sys.stderr)
            flat = Load(int(args.flat_rate), 0.0, 0.0, 200, args.flat_window, rate=args.flat_rate)
            rep["flat_out"] = {"describe": f"simulator flat out (no sleeps), 200 tokens, {args.flat_rate:g} requests/s "
                                           f"open loop, {args.rounds} x {args.flat_window:g} s per path",
                               "paths": await _compare(sim, paths, flat, args.rounds)}
        levels = [int(x) for x in args.sweep.split(",") if x]
        for name in args.sweep_paths.split(",") if levels else []:
            sweep_path = paths.get(name)
            if sweep_path is None:
                continue
            print(f"sweep {name}", file=sys.stderr)
            known = {args.concurrency: (rows["direct"], rows[name])}
            rep.setdefault("sweeps", {})[name] = await _sweep(sim, sweep_path, name, levels,
                                                              Load(args.concurrency, 0.02, 0.02, 200, args.sweep_window),
                                                              known)
        if "infermeter" in rep.get("sweeps", {}):
            rep["sweep"] = rep["sweeps"]["infermeter"]
        if args.memory:
            print("memory", file=sys.stderr)
            rep["memory"] = {}
            for name in ("infermeter", "nginx"):
                if name not in paths:
                    continue
                # A fresh relay, so earlier runs' peaks do not hide the growth.
                paths[name].stop()  # type: ignore[union-attr]
                fresh = (Nginx(sim.port, free_port()) if name == "nginx"
                         else infermeter(name, sim.url, free_port())).start()
                paths[name] = fresh
                await run(name, HOST, fresh.port, Load(10, 0.0, 0.0, 50, 1.0, rate=20.0), {"relay": fresh.pid})
                rep["memory"][name] = await rss_profile(HOST, fresh.port, fresh.pid)
        rep["targets"] = _targets(rep)
    finally:
        for relay in [*paths.values(), *_HELPERS]:
            if relay is not None:
                relay.stop()
        sim.stop()
    rep["elapsed_s"] = round(time.time() - started, 1)
    return rep


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--paths", default=DEFAULT_PATHS,
                        help="relays to compare with direct (comma-separated)")
    parser.add_argument("--concurrency", type=int, default=100, help="open streams in the realistic comparison")
    parser.add_argument("--window", type=float, default=5.0, help="seconds measured per path per round")
    parser.add_argument("--rounds", type=int, default=None, help="rotations over the paths (default 4; 6 with --cost)")
    parser.add_argument("--shapes", default="short-fresh,plain,embeddings",
                        help="shapes besides the long streams, each against every path ('' to skip)")
    parser.add_argument("--shape-rate", type=float, default=200.0, help="requests/s in each of those shapes")
    parser.add_argument("--flat-rate", type=float, default=40.0,
                        help="requests/s against the flat-out simulator (0 to skip)")
    parser.add_argument("--flat-window", type=float, default=3.0)
    parser.add_argument("--sweep", default=DEFAULT_SWEEP,
                        help="concurrency levels to try through infermeter ('' to skip)")
    parser.add_argument("--sweep-window", type=float, default=5.0)
    parser.add_argument("--sweep-paths", default="infermeter", help="paths to sweep (comma-separated)")
    parser.add_argument("--ceiling", action="store_true",
                        help="the largest load held with added p99 < 5 ms, one worker and two: infermeter,workers-2 "
                             "swept from 100 to 1400 streams; no shapes, flat-out or memory")
    parser.add_argument("--no-memory", dest="memory", action="store_false")
    parser.add_argument("--quick", action="store_true", help="one short round: a smoke test of the harness")
    parser.add_argument("--drilldown", action="store_true",
                        help=f"compare {DRILLDOWN_PATHS} only (tracing and request log each on, both off); no sweep")
    parser.add_argument("--cost", action="store_true",
                        help=f"CPU against nginx in every shape: {COST_PATHS} unless --paths says, 6 rounds; no flat-out, sweep or memory")
    parser.add_argument("--json", default=str(Path(__file__).resolve().parent / "results" / "latest.json"),
                        help="where to write the full report (default bench/results/latest.json, git-ignored)")
    args = parser.parse_args(argv)
    if args.drilldown:
        args.paths, args.sweep, args.memory = DRILLDOWN_PATHS, "", False
    if args.quick:
        args.rounds, args.window, args.flat_window, args.sweep_window, args.sweep = 1, 3.0, 2.0, 3.0, "100,200"
    if args.cost:
        args.sweep, args.memory, args.flat_rate = "", False, 0.0
        if args.paths == DEFAULT_PATHS:
            args.paths = COST_PATHS
    if args.ceiling:
        args.paths, args.sweep_paths, args.shapes, args.memory, args.flat_rate = (
            "infermeter,workers-2", "infermeter,workers-2", "", False, 0.0)
        if args.sweep == DEFAULT_SWEEP:
            args.sweep = "100,200,300,400,500,600,800,1000,1200,1400"
    if args.rounds is None:
        args.rounds = 6 if args.cost else 4
    try:
        import uvloop

        rep = uvloop.run(main_async(args))
    except ImportError:
        rep = asyncio.run(main_async(args))
    out = Path(args.json)
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps(rep, indent=2, default=str))
    print(report.table(rep))
    print(f"targets: {json.dumps(rep['targets'])}")
    print(f"full report: {args.json} ({rep['elapsed_s']} s)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
