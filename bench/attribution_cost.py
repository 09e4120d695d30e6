"""Micro-benchmark: what GPU attribution (DESIGN.md section 14) costs per chunk, off and on, side by side.

    python bench/attribution_cost.py [--repeat 20] [--streams 100] [--tokens 200] [--intervals 4]

Per chunk the relay does what it did before (the tap counts the token event, the record
stamps it); attribution adds nothing there. It costs per request (registered at arrival,
handed over at the end, closed and counted once its last interval is settled) and per
sampling interval (every request in flight is measured and settled). Timed here on the
relay's own objects, as in the bench's realistic scenario: ``--streams`` OpenAI chat
streams of ``--tokens`` chunks each, in flight together, over ``--intervals`` sampling
intervals; off is the same loop with a GPU never read (the default on a host without
one). CPU time of this process, best of ``--repeat``, runs interleaved.
"""

from __future__ import annotations

import argparse
import sys
import time
from collections.abc import Callable
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from bench.tap_micro import chat_chunks, factory  # noqa: E402
from proxy.attribution.inflight import InFlight  # noqa: E402
from proxy.attribution.local import Attribution  # noqa: E402
from proxy.attribution.series import AttributionSeries  # noqa: E402
from proxy.timing import RequestRecord  # noqa: E402


def run(attribution: Attribution, streams: int, chunks: list[bytes], intervals: int) -> Callable[[], None]:
    make = factory("chat_completions", b"text/event-stream")
    step = max(len(chunks) // intervals, 1)

    def go() -> None:
        recs = []
        taps = []
        for _ in range(streams):
            rec = RequestRecord("chat_completions", time.perf_counter_ns(), stream=True, code=200)
            tap = make()
            rec.summary = tap.summary
            attribution.begin(rec)
            recs.append(rec)
            taps.append(tap)
        for start in range(0, len(chunks), step):
            for rec, tap in zip(recs, taps):
                for chunk in chunks[start:start + step]:
                    n = tap.feed(chunk)
                    if n:
                        rec.tokens(n, time.perf_counter_ns())
                        rec.gaps_ns.clear()  # the recorder's fold, the same both ways
            # The sampler's interval boundary (a thread of its own in the proxy).
            if attribution.inflight.active:
                attribution.inflight.measure()
                attribution.inflight.settle(1e-6, 1e-3, "work")
        for rec, tap in zip(recs, taps):
            tap.close()
            rec.t_end = time.perf_counter_ns()
            rec.tenant_label, rec.model_label = "none", "m"
            if attribution.holds(rec):
                attribution.end(rec)
        if attribution.inflight.active:
            attribution.inflight.measure()
            attribution.inflight.settle(1e-6, 1e-3, "work")

    return go


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeat", type=int, default=20)
    parser.add_argument("--streams", type=int, default=100)
    parser.add_argument("--tokens", type=int, default=200)
    parser.add_argument("--intervals", type=int, default=4)
    args = parser.parse_args()
    chunks = chat_chunks(args.tokens)
    off = Attribution(InFlight(0.1), AttributionSeries(), None)
    on = Attribution(InFlight(0.1), AttributionSeries(), None)
    on.inflight.measure()  # a GPU was read: the registry is active
    runs = [run(off, args.streams, chunks, args.intervals), run(on, args.streams, chunks, args.intervals)]
    best = [float("inf")] * 2
    n = args.streams * args.tokens
    for _ in range(args.repeat):
        for i, go in enumerate(runs):
            started = time.process_time_ns()
            go()
            best[i] = min(best[i], (time.process_time_ns() - started) / n)
    print(f"{args.streams} streams x {args.tokens} chunks, {args.intervals} intervals each; CPU ns per chunk, best of {args.repeat}")
    print(f"{'attribution off (no GPU)':<28}{best[0]:>10.0f}")
    print(f"{'attribution on':<28}{best[1]:>10.0f}")
    print(f"{'added':<28}{best[1] - best[0]:>10.0f}  ({100 * (best[1] - best[0]) / best[0]:+.1f} % of tap + record)")


if __name__ == "__main__":
    main()
