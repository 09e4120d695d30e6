"""Percentiles, the path-against-direct comparison and the short table."""

from __future__ import annotations

import math
from typing import Any

from bench.scenario import Result


def pct(values: list[float], q: float) -> float:
    """Nearest-rank percentile; ``inf`` entries (no answer) sort last and count."""
    if not values:
        return math.nan
    ordered = sorted(values)
    rank = max(1, math.ceil(q / 100 * len(ordered)))
    return ordered[rank - 1]


def merge(results: list[Result]) -> Result:
    """Several rounds of one path and load, as one result."""
    first = results[0]
    out = Result(first.path, first.load)
    for r in results:
        out.window_s += r.window_s
        out.measured += r.measured
        out.errors += r.errors
        out.error_samples = sorted(set(out.error_samples) | set(r.error_samples))[:5]
        out.no_first_token += r.no_first_token
        out.ttft_ms += r.ttft_ms
        out.tbt_ms += r.tbt_ms
        out.late_ms += r.late_ms
        out.duration_ms += r.duration_ms
        out.send_lag_ms += r.send_lag_ms
        out.chunks += r.chunks
        for name, value in r.cpu_s.items():
            out.cpu_s[name] = out.cpu_s.get(name, 0.0) + value
        out.loadgen_cpu_s += r.loadgen_cpu_s
        out.machine_busy_s += r.machine_busy_s
        out.machine_cores = r.machine_cores
    return out


def _r(x: float, digits: int = 3) -> float | None:
    return None if math.isnan(x) else (x if math.isinf(x) else round(x, digits))


def summary(r: Result, relay: str | None) -> dict[str, Any]:
    """Latency percentiles, throughput and CPU of one path; ``relay`` names its relay process."""
    out: dict[str, Any] = {
        "path": r.path, "concurrency": r.load.concurrency, "window_s": round(r.window_s, 2),
        "streams_measured": r.measured, "errors": r.errors, "error_samples": r.error_samples,
        "no_first_token": r.no_first_token,
        "ttft_ms": {"p50": _r(pct(r.ttft_ms, 50)), "p99": _r(pct(r.ttft_ms, 99))},
        "send_lag_ms": {"p50": _r(pct(r.send_lag_ms, 50)), "p99": _r(pct(r.send_lag_ms, 99))},
        "chunks_per_s": round(r.chunks / r.window_s, 1) if r.window_s else 0.0,
        "loadgen_cpu_cores": round(r.loadgen_cpu_s / r.window_s, 3) if r.window_s else 0.0,
        "machine_busy_cores": round(r.machine_busy_s / r.window_s, 2) if r.window_s else 0.0,
        "cpu_cores": {n: round(v / r.window_s, 3) for n, v in r.cpu_s.items()} if r.window_s else {},
    }
    if r.load.paced and not r.load.whole:
        out["tbt_ms"] = {"p50": _r(pct(r.tbt_ms, 50)), "p99": _r(pct(r.tbt_ms, 99)), "n": len(r.tbt_ms)}
        out["chunk_lateness_ms"] = {"p50": _r(pct(r.late_ms, 50)), "p99": _r(pct(r.late_ms, 99))}
    else:
        out["duration_ms"] = {"p50": _r(pct(r.duration_ms, 50)), "p99": _r(pct(r.duration_ms, 99))}
    if relay is not None and relay in r.cpu_s:
        cpu = r.cpu_s[relay]
        out["relay_cpu_us_per_chunk"] = round(cpu / r.chunks * 1e6, 1) if r.chunks else None
        out["relay_cpu_ms_per_request"] = round(cpu / r.measured * 1e3, 3) if r.measured else None
    others = r.machine_busy_s - sum(r.cpu_s.values()) - r.loadgen_cpu_s
    out["other_processes_cores"] = round(others / r.window_s, 2) if r.window_s else 0.0
    return out


def rounds(results: list[Result], relay: str | None) -> list[dict[str, Any]]:
    """Each round's relay CPU on its own: the spread behind the merged figure."""
    out = []
    for r in results:
        s = summary(r, relay)
        out.append({"cpu_us_per_chunk": s.get("relay_cpu_us_per_chunk"),
                     "cpu_ms_per_request": s.get("relay_cpu_ms_per_request"),
                     "other_processes_cores": s["other_processes_cores"]})
    return out


def against(row: dict[str, Any], reference: dict[str, Any]) -> dict[str, Any]:
    """CPU per chunk and per request as multiples of ``reference``'s (nginx's), merged and per
    round; the rounds pair up because both paths ran in each, minutes apart at most."""
    out: dict[str, Any] = {}
    for key, name in (("relay_cpu_us_per_chunk", "per_chunk"), ("relay_cpu_ms_per_request", "per_request")):
        ours, theirs = row.get(key), reference.get(key)
        out[name] = round(ours / theirs, 2) if ours and theirs else None
        pairs = zip(row.get("rounds", []), reference.get("rounds", []))
        short = "cpu_us_per_chunk" if name == "per_chunk" else "cpu_ms_per_request"
        ratios = [round(a[short] / b[short], 2) for a, b in pairs if a[short] and b[short]]
        out[f"{name}_rounds"] = ratios
        out[f"{name}_spread"] = [min(ratios), max(ratios)] if ratios else None
    return out


def added(path: dict[str, Any], direct: dict[str, Any]) -> dict[str, Any]:
    """Path minus direct, percentile by percentile (ms)."""
    out: dict[str, Any] = {}
    for key in ("ttft_ms", "tbt_ms", "duration_ms", "chunk_lateness_ms"):
        if key in path and key in direct:
            out[key] = {q: _diff(path[key][q], direct[key][q]) for q in ("p50", "p99")}
    return out


def _diff(a: float | None, b: float | None) -> float | None:
    if a is None or b is None:
        return None
    return round(a - b, 3)


def _fmt(x: Any, unit: str = "") -> str:
    if x is None:
        return "-"
    if isinstance(x, float) and math.isinf(x):
        return "inf"
    if isinstance(x, float):
        return f"{x:+.2f}{unit}" if unit == "d" else f"{x:.2f}"
    return str(x)


def _ratio(vs: dict[str, Any], name: str) -> str:
    merged, spread = vs.get(name), vs.get(f"{name}_spread")
    if merged is None:
        return "-"
    return f"{merged:.2f} [{spread[0]:.2f},{spread[1]:.2f}]" if spread else f"{merged:.2f}"


def table(report: dict[str, Any]) -> str:
    lines = []
    for scenario in ("realistic", "flat_out"):
        block = report.get(scenario)
        if not block:
            continue
        lines.append(f"== {scenario}: {block['describe']}")
        lines.append(f"{'path':<18}{'+TTFT p50':>10}{'+TTFT p99':>10}{'+TBT p50':>9}{'+TBT p99':>9}"
                     f"{'+dur p99':>9}{'chunks/s':>9}{'us/chunk':>9}{'ms/req':>8}{'err':>5}")
        for name, row in block["paths"].items():
            add = row.get("added", {})
            lines.append(
                f"{name:<18}{_fmt(add.get('ttft_ms', {}).get('p50')):>10}{_fmt(add.get('ttft_ms', {}).get('p99')):>10}"
                f"{_fmt(add.get('tbt_ms', {}).get('p50')):>9}{_fmt(add.get('tbt_ms', {}).get('p99')):>9}"
                f"{_fmt(add.get('duration_ms', {}).get('p99')):>9}{_fmt(row['chunks_per_s']):>9}"
                f"{_fmt(row.get('relay_cpu_us_per_chunk')):>9}{_fmt(row.get('relay_cpu_ms_per_request')):>8}"
                f"{row['errors']:>5}")
    shapes = report.get("shapes")
    if shapes:
        lines.append("== CPU against nginx, shape by shape (ratio merged over the rounds, [min, max] per round)")
        lines.append(f"{'shape':<14}{'path':<16}{'+TTFT p50':>10}{'+TTFT p99':>10}{'chunks/s':>9}{'us/chunk':>9}"
                     f"{'x nginx':>18}{'ms/req':>8}{'x nginx':>18}{'err':>5}")
        for shape, block in shapes.items():
            for name, row in block["paths"].items():
                if name.startswith("direct") and name != "direct-again":
                    continue
                add = row.get("added", {}).get("ttft_ms", {})
                vs = row.get("vs_nginx", {})
                lines.append(
                    f"{shape:<14}{name:<16}{_fmt(add.get('p50')):>10}{_fmt(add.get('p99')):>10}"
                    f"{_fmt(row['chunks_per_s']):>9}{_fmt(row.get('relay_cpu_us_per_chunk')):>9}"
                    f"{_ratio(vs, 'per_chunk'):>18}{_fmt(row.get('relay_cpu_ms_per_request')):>8}"
                    f"{_ratio(vs, 'per_request'):>18}{row['errors']:>5}")
    for sweep in report.get("sweeps", {}).values():
        lines.append(f"== sweep ({sweep['path']}): largest concurrency with added p99 < 5 ms and no errors: "
                     f"{sweep['max_concurrency_ok']} at {sweep['chunks_per_s_there']} chunks/s")
        for level in sweep["levels"]:
            lines.append(f"   {level['concurrency']:>5} streams: +TTFT p99 {_fmt(level['added_ttft_p99_ms'])} ms, "
                         f"+TBT p99 {_fmt(level['added_tbt_p99_ms'])} ms, errors {level['errors']}, "
                         f"{level['chunks_per_s']} chunks/s, relay {level['relay_cpu_cores']} cores -> "
                         f"{'ok' if level['ok'] else 'FAIL'}")
    memory = report.get("memory")
    if memory:
        lines.append("== RSS with open streams (MiB at 0/100/1000; KiB per stream 0-100, 100-1000)")
        for name, m in memory.items():
            rss = m["rss_bytes"]
            per = m["bytes_per_stream"]
            lines.append(f"   {name:<18}" + " / ".join(f"{rss.get(k, 0) / 2**20:.1f}" for k in ("0", "100", "1000"))
                         + "   " + " / ".join(f"{v / 1024:.1f}" for v in per.values())
                         + f"   after close {rss.get('after_close', 0) / 2**20:.1f}")
    check = report.get("loadgen_check")
    if check:
        lines.append(f"== load generator: {check['verdict']}")
    return "\n".join(lines)
