"""The recorder turns records into exactly the observations DESIGN.md section 5 defines."""

from __future__ import annotations

from prometheus_client import CollectorRegistry

from proxy.config import Settings
from proxy.metrics.definitions import Metrics
from proxy.metrics.labels import ModelLabels
from proxy.metrics.recorder import Recorder
from proxy.stream.base import RequestInfo, StreamSummary
from proxy.timing import CANCELLED, GAP_BUFFER, RequestRecord

MS = 1_000_000


def _recorder(**settings: object) -> tuple[Recorder, CollectorRegistry]:
    registry = CollectorRegistry()
    s = Settings(**settings)  # type: ignore[arg-type]
    return Recorder(Metrics(registry, s), s), registry


def _relay(recorder: Recorder, *records: RequestRecord) -> None:
    """Each record as the relay hands it over: started at arrival, recorded at the end."""
    for rec in records:
        recorder.started(rec.endpoint)
        recorder.record(rec)


def _value(registry: CollectorRegistry, name: str, **labels: str) -> float:
    value = registry.get_sample_value(name, labels)
    return 0.0 if value is None else value


def _stream(t0: int = 0) -> RequestRecord:
    rec = RequestRecord("chat_completions", t0, request=RequestInfo(model="m"), stream=True, code=200,
                        summary=StreamSummary(output_tokens=4, token_events=4))
    rec.t_headers = t0 + 50 * MS
    rec.tokens(1, t0 + 100 * MS)
    rec.tokens(2, t0 + 130 * MS)  # two events in one chunk: gaps of 30 ms and 0
    rec.tokens(1, t0 + 150 * MS)
    rec.t_end = t0 + 200 * MS
    return rec


def test_stream_observations() -> None:
    recorder, reg = _recorder()
    _relay(recorder, _stream())
    lab = {"endpoint": "chat_completions", "model": "m"}
    assert _value(reg, "infermeter_time_to_first_token_seconds_sum", **lab) == 0.1
    assert _value(reg, "infermeter_time_between_tokens_seconds_count", **lab) == 3
    assert abs(_value(reg, "infermeter_time_between_tokens_seconds_sum", **lab) - 0.05) < 1e-9
    # TPOT = (150 - 100) ms / (4 - 1)
    assert abs(_value(reg, "infermeter_time_per_output_token_seconds_sum", **lab) - 0.05 / 3) < 1e-9
    assert _value(reg, "infermeter_output_tokens_per_second_sum", **lab) == 4 / 0.2
    assert _value(reg, "infermeter_request_duration_seconds_sum", stream="true", **lab) == 0.2
    assert _value(reg, "infermeter_upstream_response_headers_seconds_sum", endpoint="chat_completions") == 0.05
    assert _value(reg, "infermeter_requests_in_flight", endpoint="chat_completions") == 0


def test_single_token_stream_has_no_tpot_and_non_stream_no_ttft() -> None:
    recorder, reg = _recorder()
    one = RequestRecord("completions", 0, request=RequestInfo(model="m"), stream=True, code=200, t_end=10 * MS,
                        summary=StreamSummary(output_tokens=1, token_events=1))
    one.tokens(1, 5 * MS)
    plain = RequestRecord("completions", 0, request=RequestInfo(model="m"), code=200, t_end=10 * MS,
                          summary=StreamSummary(output_tokens=7))
    _relay(recorder, one, plain)
    lab = {"endpoint": "completions", "model": "m"}
    assert _value(reg, "infermeter_time_to_first_token_seconds_count", **lab) == 1
    assert _value(reg, "infermeter_time_per_output_token_seconds_count", **lab) == 0
    assert _value(reg, "infermeter_tokens_total", type="output", **lab) == 8


def test_slo_met_only_when_every_slo_is_met() -> None:
    recorder, reg = _recorder(slo_ttft=0.15, slo_request_duration=0.19)
    _relay(recorder, _stream())  # TTFT 0.1 meets 0.15, but duration 0.2 misses 0.19
    cancelled = _stream()
    cancelled.outcome = CANCELLED
    _relay(recorder, cancelled)  # the client left: neither met nor missed
    lab = {"endpoint": "chat_completions", "model": "m"}
    assert _value(reg, "infermeter_slo_requests_total", result="missed", **lab) == 1
    assert _value(reg, "infermeter_slo_requests_total", result="met", **lab) == 0
    assert _value(reg, "infermeter_time_to_first_token_seconds_bucket", le="0.15", **lab) == 2


def test_model_labels_are_cut_and_capped() -> None:
    labels = ModelLabels(limit=2)
    assert labels("a" * 300) == "a" * 128
    assert labels("b") == "b"
    assert labels("c") == "other"
    assert labels("b") == "b"
    assert labels(None) == "unknown"


def test_output_tokens_fall_back_on_token_events_and_say_so() -> None:
    rec = RequestRecord("chat_completions", 0, request=RequestInfo(model="m"), code=200, summary=StreamSummary(token_events=3))
    assert (rec.output_tokens, rec.tokens_estimated) == (3, True)
    rec.summary.output_tokens = 5
    assert (rec.output_tokens, rec.tokens_estimated) == (5, False)
    assert RequestRecord("chat_completions", 0).output_tokens is None


def test_the_response_model_wins_over_the_request_model() -> None:
    rec = RequestRecord("chat_completions", 0, request=RequestInfo(model="alias"), summary=StreamSummary(model="real"))
    assert rec.model == "real"
    rec.summary.model = None
    assert rec.model == "alias"


def test_only_a_successful_answer_admits_a_new_model_label() -> None:
    recorder, reg = _recorder(max_models=1)
    for model, code in (("junk", 404), ("real", 200), ("junk", 200)):
        _relay(recorder, RequestRecord("chat_completions", 0, request=RequestInfo(model=model), code=code, t_end=MS))
    assert _value(reg, "infermeter_requests_total", endpoint="chat_completions", model="other", code="404", outcome="completed") == 1
    assert _value(reg, "infermeter_requests_total", endpoint="chat_completions", model="real", code="200", outcome="completed") == 1
    # The slot went to the first model a server answered for; later names are "other".
    assert _value(reg, "infermeter_requests_total", endpoint="chat_completions", model="other", code="200", outcome="completed") == 1


def test_an_endless_stream_holds_a_bounded_number_of_gaps() -> None:
    recorder, reg = _recorder()
    rec = RequestRecord("chat_completions", 0, request=RequestInfo(model="m"), stream=True, code=200)
    recorder.started("chat_completions")
    held = 0
    for i in range(10 * GAP_BUFFER):
        if rec.tokens(2, (i + 1) * MS):
            recorder.drain_gaps(rec)
        held = max(held, len(rec.gaps_ns))
    rec.summary.token_events = 20 * GAP_BUFFER
    rec.t_end = (10 * GAP_BUFFER + 1) * MS
    recorder.record(rec)
    assert held <= GAP_BUFFER
    lab = {"endpoint": "chat_completions", "model": "m"}
    # 10*B - 1 gaps of 1 ms between chunks, and one 0 gap inside each of the 10*B chunks.
    assert _value(reg, "infermeter_time_between_tokens_seconds_count", **lab) == 20 * GAP_BUFFER - 1
    assert abs(_value(reg, "infermeter_time_between_tokens_seconds_sum", **lab) - (10 * GAP_BUFFER - 1) / 1000) < 1e-6


def test_server_reported_phases_and_token_subsets() -> None:
    recorder, reg = _recorder()
    reported = RequestRecord("ollama_chat", 0, request=RequestInfo(model="m"), code=200, t_end=10 * MS, summary=StreamSummary(
        input_tokens=40, output_tokens=9, cached_input_tokens=32, reasoning_output_tokens=5,
        phases={"load": 2.5, "prefill": 0.125, "decode": 0.5}))
    silent = RequestRecord("ollama_chat", 0, request=RequestInfo(model="m"), code=200, t_end=10 * MS,
                           summary=StreamSummary(input_tokens=40, output_tokens=9))
    _relay(recorder, reported, silent)
    lab = {"endpoint": "ollama_chat", "model": "m"}
    assert _value(reg, "infermeter_cached_input_tokens_total", **lab) == 32
    assert _value(reg, "infermeter_reasoning_output_tokens_total", **lab) == 5
    assert _value(reg, "infermeter_tokens_total", type="input", **lab) == 80
    for phase, seconds in (("load", 2.5), ("prefill", 0.125), ("decode", 0.5)):
        # Only the request that reported the phase is observed.
        assert _value(reg, "infermeter_upstream_phase_seconds_count", phase=phase, **lab) == 1
        assert _value(reg, "infermeter_upstream_phase_seconds_sum", phase=phase, **lab) == seconds
    # A phase no server reported has no series at all, not an empty histogram.
    assert reg.get_sample_value("infermeter_upstream_phase_seconds_count", {**lab, "phase": "queue"}) is None


def test_a_stream_named_at_its_end_puts_every_gap_under_that_name() -> None:
    recorder, reg = _recorder()
    rec = RequestRecord("llamacpp_completion", 0, stream=True, code=200)
    recorder.started(rec.endpoint)
    drained = 0
    for i in range(3 * GAP_BUFFER + 10):
        if rec.tokens(1, (i + 1) * MS):
            recorder.drain_gaps(rec)
            drained += 1
    rec.summary = StreamSummary(model="late", token_events=3 * GAP_BUFFER + 10)
    rec.t_end = (3 * GAP_BUFFER + 20) * MS
    assert drained == 3
    assert recorder.record(rec) == "late"
    lab = {"endpoint": "llamacpp_completion"}
    assert _value(reg, "infermeter_time_between_tokens_seconds_count", model="late", **lab) == 3 * GAP_BUFFER + 9
    assert _value(reg, "infermeter_time_between_tokens_seconds_count", model="unknown", **lab) == 0
    assert abs(_value(reg, "infermeter_time_between_tokens_seconds_sum", model="late", **lab)
               - (3 * GAP_BUFFER + 9) / 1000) < 1e-9
    # The record holds nothing afterwards: the counts went out once.
    assert (rec.gap_counts, rec.gap_sum_ns, rec.gaps_ns, rec.zero_gaps) == (None, 0, [], 0)


def test_folded_gaps_expose_exactly_what_observing_each_would() -> None:
    folded, reg = _recorder()
    rec = RequestRecord("chat_completions", 0, stream=True, code=200, request=RequestInfo(model="m"))
    folded.started(rec.endpoint)
    gaps: list[int] = []
    now = 0
    for i in range(5 * GAP_BUFFER):
        # Gaps across the family's range (0.5 ms to 2.5 s), some exactly on a bound; two
        # events in every fifth chunk (a 0 gap).
        step = (i * 7919 % 5000 + 1) * 500_000 if i % 13 else 20_000_000
        now += step
        if i:
            gaps.append(step)
        n = 2 if i % 5 == 0 else 1
        gaps.extend([0] * (n - 1))
        if rec.tokens(n, now):
            folded.drain_gaps(rec)
    rec.summary.token_events = len(gaps) + 1
    rec.t_end = now + MS
    assert rec.gap_counts is not None  # folded mid-stream
    folded.record(rec)

    one_by_one, expected = _recorder()
    plain = RequestRecord("chat_completions", 0, stream=True, code=200, request=RequestInfo(model="m"),
                          t_first=rec.t_first, t_last=rec.t_last, t_end=rec.t_end, summary=rec.summary)
    _relay(one_by_one, plain)
    child = one_by_one.m.tbt.labels("chat_completions", "m")
    for gap in gaps:
        child.observe(gap / 1e9)
    name = "infermeter_time_between_tokens_seconds"
    lab = {"endpoint": "chat_completions", "model": "m"}
    got = {s.labels["le"]: s.value for f in reg.collect() for s in f.samples if s.name == f"{name}_bucket"}
    want = {s.labels["le"]: s.value for f in expected.collect() for s in f.samples if s.name == f"{name}_bucket"}
    assert got == want and got["+Inf"] == len(gaps)
    # One addition of the exact ns total against one per gap: equal up to float rounding.
    assert abs(_value(reg, f"{name}_sum", **lab) - _value(expected, f"{name}_sum", **lab)) <= 1e-12 * _value(
        expected, f"{name}_sum", **lab)
