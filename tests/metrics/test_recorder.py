"""The recorder turns records into exactly the observations DESIGN.md section 5 defines."""

from __future__ import annotations

from prometheus_client import CollectorRegistry

from proxy.config import Settings
from proxy.metrics.definitions import Metrics
from proxy.metrics.labels import ModelLabels
from proxy.metrics.recorder import Recorder
from proxy.timing import CANCELLED, RequestRecord

MS = 1_000_000


def _recorder(**settings: object) -> tuple[Recorder, CollectorRegistry]:
    registry = CollectorRegistry()
    s = Settings(**settings)  # type: ignore[arg-type]
    return Recorder(Metrics(registry, s), s), registry


def _value(registry: CollectorRegistry, name: str, **labels: str) -> float:
    value = registry.get_sample_value(name, labels)
    return 0.0 if value is None else value


def _stream(t0: int = 0) -> RequestRecord:
    rec = RequestRecord("chat_completions", t0, model="m", stream=True, code=200)
    rec.t_headers = t0 + 50 * MS
    rec.tokens(1, t0 + 100 * MS)
    rec.tokens(2, t0 + 130 * MS)  # two events in one chunk: gaps of 30 ms and 0
    rec.tokens(1, t0 + 150 * MS)
    rec.t_end = t0 + 200 * MS
    rec.output_tokens = 4
    return rec


def test_stream_observations() -> None:
    recorder, reg = _recorder()
    recorder.started("chat_completions")
    recorder.record(_stream())
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
    one = RequestRecord("completions", 0, model="m", stream=True, code=200, t_end=10 * MS)
    one.tokens(1, 5 * MS)
    one.output_tokens = 1
    plain = RequestRecord("completions", 0, model="m", code=200, t_end=10 * MS, output_tokens=7)
    for rec in (one, plain):
        recorder.started("completions")
        recorder.record(rec)
    lab = {"endpoint": "completions", "model": "m"}
    assert _value(reg, "infermeter_time_to_first_token_seconds_count", **lab) == 1
    assert _value(reg, "infermeter_time_per_output_token_seconds_count", **lab) == 0
    assert _value(reg, "infermeter_tokens_total", type="output", **lab) == 8


def test_slo_met_only_when_every_slo_is_met() -> None:
    recorder, reg = _recorder(slo_ttft=0.15, slo_request_duration=0.19)
    recorder.started("chat_completions")
    recorder.record(_stream())  # TTFT 0.1 meets 0.15, but duration 0.2 misses 0.19
    cancelled = _stream()
    cancelled.outcome = CANCELLED
    recorder.started("chat_completions")
    recorder.record(cancelled)  # the client left: neither met nor missed
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
