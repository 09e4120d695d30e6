"""Micro-benchmark: what tenants (DESIGN.md section 14) cost per request, off and on, side by side.

    python bench/tenant_cost.py [--repeat 30] [--tenants 1000]

Per request the relay asks who the request is for (one header lookup; with --tenant-keys
the API key's digest, cached) and the recorder writes the tenant's counters at the end.
Timed here on the relay's own objects with an OpenAI SDK's request headers: the arrival
(``TenantIdentity``) and the end (``Recorder.record`` of a finished 20-token stream), for
no tenant source (the default), a header, a known key (digest cached) and a new key every
request (a SHA-256 each). Best of ``--repeat`` runs of 20,000 requests.

``--tenants N`` also prints the memory each admitted tenant costs (its label children, one
model), measured with tracemalloc over N tenants.
"""

from __future__ import annotations

import argparse
import sys
import time
import tracemalloc
from collections.abc import Callable
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from prometheus_client import CollectorRegistry  # noqa: E402

from proxy.config import Settings  # noqa: E402
from proxy.metrics.definitions import Metrics  # noqa: E402
from proxy.metrics.recorder import Recorder  # noqa: E402
from proxy.stream.base import RequestInfo, StreamSummary  # noqa: E402
from proxy.tenants.identity import TenantIdentity  # noqa: E402
from proxy.tenants.keys import TenantKeys, digest_of  # noqa: E402
from proxy.timing import RequestRecord  # noqa: E402

N = 20_000
KEY = b"sk-proj-0123456789abcdefghijklmnopqrstuvwxyzABCDEFGHIJ"
# What the openai SDK (1.x) sends with a chat completion, in its order.
HEADERS = [
    (b"host", b"127.0.0.1:8100"), (b"accept-encoding", b"gzip, deflate"), (b"connection", b"keep-alive"),
    (b"accept", b"application/json"), (b"content-type", b"application/json"), (b"user-agent", b"OpenAI/Python 1.99.9"),
    (b"x-stainless-lang", b"python"), (b"x-stainless-package-version", b"1.99.9"), (b"x-stainless-os", b"Linux"),
    (b"x-stainless-arch", b"x64"), (b"x-stainless-runtime", b"CPython"), (b"x-stainless-runtime-version", b"3.11.7"),
    (b"authorization", b"Bearer " + KEY), (b"x-stainless-async", b"false"), (b"x-stainless-retry-count", b"0"),
    (b"x-stainless-read-timeout", b"600"), (b"content-length", b"96"),
]


def _arrival(identity: TenantIdentity | None, headers: list[list[tuple[bytes, bytes]]]) -> Callable[[], None]:
    """What Relay.__call__ does for the tenant at arrival, N times."""
    def run() -> None:
        for h in headers:
            rec = RequestRecord("chat_completions", 0)
            if identity is not None:
                rec.tenant = identity(h)

    return run


def _finish(settings: Settings, tenant: str) -> Callable[[], None]:
    """Recorder.record of a finished 20-token stream with exact usage, N times."""
    recorder = Recorder(Metrics(CollectorRegistry(), settings), settings)
    report = StreamSummary(model="m", input_tokens=40, output_tokens=20, cached_input_tokens=8, token_events=20)
    info = RequestInfo(model="m", stream=True)

    def run() -> None:
        for _ in range(N):
            rec = RequestRecord("chat_completions", 0, stream=True, code=200, t_first=10, t_last=20, t_end=30,
                                request=info, summary=report, tenant=tenant)
            recorder.started("chat_completions")
            recorder.record(rec)

    return run


def interleaved(runs: list[Callable[[], None]], repeat: int) -> list[float]:
    """Best ns per request of each run; the runs take turns, so a busy moment of a shared
    machine does not land on one of them only. CPU time of this process, not wall time."""
    best = [float("inf")] * len(runs)
    for _ in range(repeat):
        for i, run in enumerate(runs):
            started = time.process_time_ns()
            run()
            best[i] = min(best[i], (time.process_time_ns() - started) / N)
    return best


def per_tenant_bytes(tenants: int) -> float:
    settings = Settings(tenant_header="x-tenant", max_tenants=tenants)
    recorder = Recorder(Metrics(CollectorRegistry(), settings), settings)
    report = StreamSummary(model="m", input_tokens=4, output_tokens=2)

    def record(name: str) -> None:
        recorder.started("chat_completions")
        recorder.record(RequestRecord("chat_completions", 0, code=200, t_end=1, summary=report, tenant=name))

    record("warm")
    tracemalloc.start()
    before = tracemalloc.get_traced_memory()[0]
    for i in range(tenants):
        record(f"tenant-{i}")
    grown = tracemalloc.get_traced_memory()[0] - before
    tracemalloc.stop()
    return grown / tenants


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeat", type=int, default=30)
    parser.add_argument("--tenants", type=int, default=1000)
    args = parser.parse_args()
    keys_file = Path("/tmp/infermeter-bench-tenant-keys.json")
    keys_file.write_text('{"team-a": "%s"}' % digest_of(KEY))
    keys = TenantKeys(str(keys_file), interval=3600)
    same = [HEADERS] * N
    fresh = [[*HEADERS[:-5], (b"authorization", b"Bearer sk-%d" % i), *HEADERS[-4:]] for i in range(N)]
    header = [[*HEADERS, (b"x-tenant", b"team-a")]] * N
    sources = [
        ("off (no tenant source)", None, same, Settings(), "none"),
        ("--tenant-header", TenantIdentity("x-tenant", None), header, Settings(tenant_header="x-tenant"), "team-a"),
        ("--tenant-keys, known key (cached digest)", TenantIdentity(None, keys), same,
         Settings(tenant_header="x-tenant"), "team-a"),
        ("--tenant-keys, a new key every request", TenantIdentity(None, keys), fresh,
         Settings(tenant_header="x-tenant"), "key:0123abcd"),
    ]
    try:
        at = interleaved([_arrival(None, same)] + [_arrival(i, h) for _, i, h, _, _ in sources], args.repeat)
        end = interleaved([_finish(s, t) for _, _, _, s, t in sources], args.repeat)
    finally:
        keys.close()
        keys_file.unlink()
    print(f"{'tenant source':<44}{'arrival ns':>12}{'record() ns':>13}{'added ns':>10}")
    bare = at[0]
    for n, (name, *_) in enumerate(sources):
        added = at[n + 1] - bare + end[n] - end[0]
        print(f"{name:<44}{at[n + 1] - bare:>12.0f}{end[n]:>13.0f}{added:>10.0f}")
    print(f"memory per admitted tenant (one model, {args.tenants} tenants): {per_tenant_bytes(args.tenants):.0f} bytes")


if __name__ == "__main__":
    main()
