"""The whole request-path exposition, diffed against a golden file (as node_exporter keeps
``collector/fixtures/e2e-output.txt``): names, types, help, labels, buckets and values.

A fixed set of records goes into a fresh registry with fixed settings; collectors,
process metrics and ``_created`` timestamps are not part of it. A change to the metric
contract shows here as a diff to read and commit with the change. To write the file
again after a deliberate change:

    INFERMETER_REGEN_GOLDEN=1 python -m pytest tests/metrics/test_golden.py
"""

from __future__ import annotations

import os
from pathlib import Path

from prometheus_client import CollectorRegistry, generate_latest

from proxy import __version__
from proxy.config import Settings
from proxy.metrics.definitions import Metrics
from proxy.metrics.recorder import Recorder
from proxy.stream.base import RequestInfo, StreamSummary
from proxy.timing import CANCELLED, UPSTREAM_ERROR, RequestRecord

GOLDEN = Path(__file__).parent / "fixtures" / "golden.prom"
REGENERATE = "INFERMETER_REGEN_GOLDEN"
MS = 1_000_000


def _records() -> list[RequestRecord]:
    """One of each kind of ending, with every server-reported field somewhere."""
    stream = RequestRecord("chat_completions", 0, request=RequestInfo(model="m-chat"), stream=True, code=200, summary=StreamSummary(
        input_tokens=12, output_tokens=5, token_events=4, finish_reason="stop", cached_input_tokens=8,
        reasoning_output_tokens=2, phases={"queue": 0.004, "prefill": 0.02}))
    stream.t_headers = 30 * MS
    stream.tokens(1, 80 * MS)
    stream.tokens(2, 95 * MS)  # two events in one chunk
    stream.tokens(1, 140 * MS)
    stream.t_end = 150 * MS

    whole = RequestRecord("completions", 0, request=RequestInfo(model="m-plain"), code=200, t_headers=900 * MS, t_end=1000 * MS,
                          summary=StreamSummary(input_tokens=3, output_tokens=40, finish_reason="length"))

    cancelled = RequestRecord("messages", 0, request=RequestInfo(model="m-chat"), stream=True, code=200, outcome=CANCELLED,
                              summary=StreamSummary(token_events=2, parse_errors=1))
    cancelled.t_headers = 20 * MS
    cancelled.tokens(1, 60 * MS)
    cancelled.tokens(1, 75 * MS)
    cancelled.t_end = 90 * MS

    failed = RequestRecord("ollama_chat", 0, request=RequestInfo(model=None), code=502, outcome=UPSTREAM_ERROR, t_end=5 * MS)
    return [stream, whole, cancelled, failed]


def _name(line: str) -> str:
    """The metric a line is about: a sample, or a ``# HELP``/``# TYPE`` line."""
    words = line.split(" ", 3)
    return words[2] if line.startswith("#") else words[0].split("{", 1)[0]


def render() -> str:
    registry = CollectorRegistry()
    settings = Settings(collectors=(), slo_ttft=0.1, slo_tpot=0.03, slo_request_duration=2.0, max_models=4)
    recorder = Recorder(Metrics(registry, settings), settings)
    for rec in _records():
        recorder.started(rec.endpoint)
        recorder.record(rec)
    recorder.started("embeddings")  # one still in flight
    text = generate_latest(registry).decode()
    # _created holds the wall-clock time a series appeared; the version changes by release.
    lines = [line for line in text.splitlines() if not _name(line).endswith("_created")]
    return "\n".join(lines).replace(f'version="{__version__}"', 'version="VERSION"') + "\n"


def test_exposition_matches_the_golden_file() -> None:
    text = render()
    if os.environ.get(REGENERATE):
        GOLDEN.write_text(text, encoding="utf-8")
    golden = GOLDEN.read_text(encoding="utf-8")
    assert text == golden, f"/metrics differs from {GOLDEN.name}; if the change is meant, run with {REGENERATE}=1 and commit"
