"""Micro-benchmark: CPU cost per chunk of the response checks in the tap, side by side.

    python bench/checks_micro.py [--chunks 400] [--repeat 200]

For each format, a plain stream (no JSON asked for, one text delta per chunk, as
bench/tap_micro.py builds them) through the format's tap three ways: checks off (no
observer, ``--checks none``), checks on (all four: empty, json, tool_arguments,
repetition; only empty and repetition apply to a plain answer), and on for a JSON-mode
request (the text is also kept for the json check). The end-of-response judgement
(``results()``) is included, spread over the chunks. Best of ``--repeat`` runs.
"""

from __future__ import annotations

import argparse
import sys
import time
from collections.abc import Callable
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from bench.tap_micro import anthropic_chunks, chat_chunks, factory, ollama_chunks, responses_chunks  # noqa: E402
from proxy.quality.checks import CHECKS, ResponseChecks  # noqa: E402
from proxy.quality.expect import Expect  # noqa: E402
from proxy.stream.base import Tap  # noqa: E402

ALL = frozenset(CHECKS)
JSON_MODE = Expect(json=True)


def per_chunk_us(make: Callable[[], Tap], endpoint: str, chunks: list[bytes], repeat: int,
                 checks: frozenset[str] | None, expect: Expect | None = None) -> float:
    best = float("inf")
    for _ in range(repeat):
        tap = make()
        watcher = ResponseChecks.create(endpoint, checks, expect) if checks is not None else None
        start = time.perf_counter_ns()
        if watcher is not None:
            watcher.watch(tap.summary)
        for chunk in chunks:
            tap.feed(chunk)
        tap.close()
        if watcher is not None:
            watcher.results()
        best = min(best, (time.perf_counter_ns() - start) / len(chunks))
    return best / 1000


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--chunks", type=int, default=400)
    parser.add_argument("--repeat", type=int, default=200)
    args = parser.parse_args()
    n, repeat = args.chunks, args.repeat
    formats = [
        ("openai chat", "chat_completions", b"text/event-stream", chat_chunks(n)),
        ("anthropic messages", "messages", b"text/event-stream", anthropic_chunks(n)),
        ("responses", "responses", b"text/event-stream", responses_chunks(n)),
        ("ollama chat", "ollama_chat", b"application/x-ndjson", ollama_chunks(n)),
    ]
    print(f"{n} chunks x {repeat} runs, best run, microseconds per chunk")
    print(f"  {'format':20} {'off':>6} {'on':>6} {'added':>7} {'json mode':>9}")
    for label, endpoint, content_type, chunks in formats:
        make = factory(endpoint, content_type)
        # Interleaved, twice, so a noisy moment does not favour one side.
        off = min(per_chunk_us(make, endpoint, chunks, repeat, None) for _ in range(2))
        on = min(per_chunk_us(make, endpoint, chunks, repeat, ALL) for _ in range(2))
        json_mode = per_chunk_us(make, endpoint, chunks, repeat, ALL, JSON_MODE)
        print(f"  {label:20} {off:6.2f} {on:6.2f} {on - off:+7.2f} {json_mode:9.2f}")


if __name__ == "__main__":
    main()
