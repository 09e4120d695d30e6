"""What the proxy's /metrics must show after one request, and how to compare client results.

The simulator runs every format with the same schedule: first token ``TTFT`` after
the request starts, then one token every ``TBT``, ``TOKENS`` tokens. Timing bounds are
wide enough for a loaded 2-core machine and narrow enough to catch a wrong definition
(TTFT measured from the wrong point, a gap per chunk instead of per token event).
"""

from __future__ import annotations

from typing import Any

from tests.support.metrics import Delta

TTFT = 0.05
TBT = 0.01
TOKENS = 8
SCHEDULE: dict[str, Any] = {"ttft": TTFT, "tbt": TBT, "output_tokens": TOKENS}
# TTFT mean for a TTFT of 0.05 s: never early, at most 150 ms late under load.
SLACK = 0.15
# Every field whose value differs between two identical requests: ids, clocks, durations,
# and the cached prompt tokens (the second of two identical requests hits the prompt cache).
VOLATILE = frozenset({"id", "item_id", "created", "created_at", "total_duration", "prompt_eval_duration",
                      "eval_duration", "load_duration", "timings", "cached_tokens"})


def scrub(value: Any) -> Any:
    """``value`` with every VOLATILE field replaced, recursively, so two answers compare."""
    if isinstance(value, dict):
        return {k: "<volatile>" if k in VOLATILE else scrub(v) for k, v in value.items()}
    if isinstance(value, list):
        return [scrub(v) for v in value]
    return value


def check_counts(d: Delta, endpoint: str, model: str, *, inputs: int | None, outputs: int, reason: str | None,
                 stream: bool, estimated: bool = False, parse_errors: int = 0) -> None:
    labels = {"endpoint": endpoint, "model": model}
    assert d.get("infermeter_requests_total", **labels, code="200", outcome="completed") == 1
    assert d.get("infermeter_requests_total", endpoint=endpoint) == 1, "labelled with another model"
    assert d.get("infermeter_request_duration_seconds_count", **labels, stream=str(stream).lower()) == 1
    assert d.get("infermeter_tokens_total", **labels, type="output") == outputs
    assert d.get("infermeter_tokens_total", **labels, type="input") == (inputs or 0)
    assert d.get("infermeter_request_tokens_count", **labels, type="input") == (0 if inputs is None else 1)
    assert d.get("infermeter_token_counts_estimated_total", endpoint=endpoint) == int(estimated)
    assert d.get("infermeter_stream_parse_errors_total", endpoint=endpoint) == parse_errors
    finished = d.get("infermeter_finish_reasons_total", **labels)
    if reason is None:
        assert finished == 0
    else:
        assert d.get("infermeter_finish_reasons_total", **labels, reason=reason) == 1 == finished


def check_stream_timing(d: Delta, endpoint: str, model: str, *, events: int = TOKENS, first: float = TTFT,
                        last: float | None = None) -> None:
    """One TTFT near ``first`` (when the first token event is due), one TBT per gap between
    ``events`` token events, the last due at ``last`` (default: ``events`` ticks of TBT)."""
    labels = {"endpoint": endpoint, "model": model}
    assert d.get("infermeter_time_to_first_token_seconds_count", **labels) == 1
    ttft = d.get("infermeter_time_to_first_token_seconds_sum", **labels)
    assert first - 0.005 <= ttft <= first + SLACK, f"TTFT {ttft:.4f} s, first token due at {first} s"
    assert d.get("infermeter_time_between_tokens_seconds_count", **labels) == events - 1
    # Deadlines are absolute, so first token + all gaps = the last token's time, whatever
    # the lateness of any one token in between.
    due = first + (events - 1) * TBT if last is None else last
    seen = ttft + d.get("infermeter_time_between_tokens_seconds_sum", **labels)
    assert due - 0.005 <= seen <= due + 2 * SLACK, f"last token at {seen:.4f} s, due at {due} s"


def check_no_stream_timing(d: Delta, endpoint: str, model: str, *, ready: float) -> None:
    """A JSON answer has no TTFT, TBT or TPOT; its duration covers the whole generation."""
    labels = {"endpoint": endpoint, "model": model}
    for name in ("time_to_first_token", "time_between_tokens", "time_per_output_token"):
        assert d.get(f"infermeter_{name}_seconds_count", **labels) == 0
    duration = d.get("infermeter_request_duration_seconds_sum", **labels, stream="false")
    assert ready - 0.005 <= duration <= ready + 2 * SLACK, f"duration {duration:.4f} s, answer ready at {ready} s"


def check_stream(d: Delta, endpoint: str, model: str, *, inputs: int | None, outputs: int, reason: str | None,
                 events: int = TOKENS, first: float = TTFT, last: float | None = None, estimated: bool = False,
                 parse_errors: int = 0) -> None:
    check_counts(d, endpoint, model, inputs=inputs, outputs=outputs, reason=reason, stream=True,
                 estimated=estimated, parse_errors=parse_errors)
    check_stream_timing(d, endpoint, model, events=events, first=first, last=last)
    # TPOT needs two output tokens and a first token event.
    tpot = d.get("infermeter_time_per_output_token_seconds_count", endpoint=endpoint, model=model)
    assert tpot == (1 if outputs >= 2 and events >= 1 else 0)


def check_whole(d: Delta, endpoint: str, model: str, *, inputs: int | None, outputs: int, reason: str | None,
                tokens: int = TOKENS) -> None:
    check_counts(d, endpoint, model, inputs=inputs, outputs=outputs, reason=reason, stream=False)
    check_no_stream_timing(d, endpoint, model, ready=TTFT + (tokens - 1) * TBT)
