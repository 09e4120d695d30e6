"""The GPU collector on real NVML; skipped where there is no NVIDIA GPU and driver."""

from __future__ import annotations

import pytest

from tests.gpu.check_nvml import main, nvml_available

pytestmark = pytest.mark.gpu


def test_real_nvml_series_are_sane_under_load() -> None:
    why = nvml_available()
    if why is not None:
        pytest.skip(f"no usable NVIDIA GPU: {why}")
    assert main(["--seconds", "4"]) == 0
