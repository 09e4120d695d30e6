"""SimConfig's defaults and its refusals, each naming the field."""

from __future__ import annotations

from typing import Any

import pytest

from proxy.simulator import SimConfig


def test_defaults() -> None:
    config = SimConfig()
    assert (config.ttft, config.tbt, config.output_tokens, config.jitter, config.seed) == (0.2, 0.02, 64, 0.0, 0)
    assert (config.model, config.max_concurrency, config.error_rate, config.gc_freeze) == (
        "infermeter-sim", 0, 0.0, True)


@pytest.mark.parametrize(("field", "value"), [
    ("ttft", -0.1), ("ttft", float("inf")), ("tbt", -1), ("tbt", "fast"),
    ("output_tokens", -1), ("output_tokens", 1.5), ("max_concurrency", -2), ("seed", "x"),
    ("jitter", 1.5), ("jitter", -0.1), ("error_rate", 2), ("model", ""), ("gc_freeze", "yes"),
])
def test_invalid_values_name_the_field(field: str, value: Any) -> None:
    with pytest.raises(ValueError, match=field):
        SimConfig(**{field: value})


def test_zero_timing_is_flat_out() -> None:
    assert SimConfig(ttft=0, tbt=0).ttft == 0
