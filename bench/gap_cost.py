"""Micro-benchmark: what the timing record and the recorder cost per token chunk of a stream.

    python bench/gap_cost.py [--repeat 30]

A stream of N chunks, one token event each, 20 ms apart (fake stamps, no sleeping), as
the relay drives it: ``rec.tokens`` per chunk, ``recorder.drain_gaps`` whenever the record
says its held gaps are full, ``recorder.record`` at the end. Printed: nanoseconds per
chunk over the whole request (the end included) for short and long streams, and the end
alone (``record``), for a model named in every chunk and for one named only at the end
(llama.cpp ``/completion``). Best of ``--repeat`` runs: the cost without scheduler noise.
"""

from __future__ import annotations

import argparse
import time

from prometheus_client import CollectorRegistry

from proxy.config import Settings
from proxy.metrics.definitions import Metrics
from proxy.metrics.recorder import Recorder
from proxy.stream.base import RequestInfo, StreamSummary
from proxy.timing import RequestRecord

GAP_NS = 20_000_000


def one_stream(recorder: Recorder, chunks: int, named_late: bool) -> tuple[int, int]:
    """(ns for the whole request, ns for ``record`` alone)."""
    rec = RequestRecord("llamacpp_completion", 0, stream=True, code=200,
                        request=RequestInfo(model=None if named_late else "m"))
    recorder.started(rec.endpoint)
    started = time.perf_counter_ns()
    for i in range(chunks):
        if rec.tokens(1, (i + 1) * GAP_NS):
            recorder.drain_gaps(rec)
    rec.summary = StreamSummary(model="m", output_tokens=chunks, token_events=chunks)
    rec.t_end = (chunks + 1) * GAP_NS
    ended = time.perf_counter_ns()
    recorder.record(rec)
    done = time.perf_counter_ns()
    return done - started, done - ended


def best(chunks: int, named_late: bool, repeat: int) -> tuple[float, float]:
    settings = Settings()
    recorder = Recorder(Metrics(CollectorRegistry(), settings), settings)
    whole, end = float("inf"), float("inf")
    # Enough streams per run that short ones are not timer noise.
    streams = max(1, 20_000 // chunks)
    for _ in range(repeat):
        runs = [one_stream(recorder, chunks, named_late) for _ in range(streams)]
        whole = min(whole, sum(r[0] for r in runs) / streams / chunks)
        end = min(end, sum(r[1] for r in runs) / streams)
    return whole, end


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeat", type=int, default=30)
    args = parser.parse_args()
    print(f"{'stream':<44}{'ns/chunk':>10}{'record() ns':>14}")
    for chunks in (30, 200, 1200, 10_000):
        for named_late in (False, True):
            whole, end = best(chunks, named_late, args.repeat)
            name = f"{chunks} chunks, model named {'at the end' if named_late else 'in the request'}"
            print(f"{name:<44}{whole:>10.0f}{end:>14.0f}")


if __name__ == "__main__":
    main()
