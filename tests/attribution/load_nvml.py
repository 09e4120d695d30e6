"""A fake NVML whose GPU draws power and runs kernels only while the simulator works.

Its story is consistent with the simulator's load: power is ``idle_w`` plus ``stream_w``
per request the simulator has in progress (``load``, read at every call), utilization
follows the same count, and the energy counter integrates that power between calls. The
counter starts at ``START_MJ`` at the first call, so a test knows the value at the
collector's first read. Test-only: the product reads pynvml, and the tests put this in
its place (``sys.modules["pynvml"]``, or ``sitecustomize`` in a child process).
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable

import pynvml  # type: ignore[import-untyped]

from tests.collectors.fake_nvml import FakeGpu, FakeNvml, _Handle

START_MJ = 1_000_000


class LoadNvml(FakeNvml):
    def __init__(self, gpus: list[FakeGpu], load: Callable[[], int], idle_w: float = 50.0,
                 stream_w: float = 100.0, energy_supported: bool = True) -> None:
        super().__init__(gpus)
        self.load = load
        self.idle_w = idle_w
        self.stream_w = stream_w
        self._lock = threading.Lock()
        self._energy_mj = [float(START_MJ)] * len(gpus)
        self._at: list[float | None] = [None] * len(gpus)
        self._watts = [idle_w] * len(gpus)
        for gpu in gpus:
            gpu.utilization = lambda: min(100, 40 * self.load())
            if not energy_supported:
                gpu.errors["nvmlDeviceGetTotalEnergyConsumption"] = pynvml.NVML_ERROR_NOT_SUPPORTED

    def _advance(self, index: int) -> float:
        # The power drawn since the last call was the load seen then: a step function.
        with self._lock:
            now = time.monotonic()
            at = self._at[index]
            if at is not None:
                self._energy_mj[index] += self._watts[index] * (now - at) * 1000.0
            self._at[index] = now
            self._watts[index] = self.idle_w + self.stream_w * self.load()
            return self._energy_mj[index]

    def nvmlDeviceGetPowerUsage(self, handle: _Handle) -> int:
        self._gpu(handle, "nvmlDeviceGetPowerUsage")
        self._advance(handle.index)
        return int(self._watts[handle.index] * 1000)

    def nvmlDeviceGetTotalEnergyConsumption(self, handle: _Handle) -> int:
        self._gpu(handle, "nvmlDeviceGetTotalEnergyConsumption")
        return int(self._advance(handle.index))


def stats_load(url: str) -> Callable[[], int]:
    """The simulator's requests in progress, read from its ``/sim/stats`` (another process)."""
    import httpx

    def load() -> int:
        return int(httpx.get(url + "/sim/stats", timeout=2.0).json()["active"])

    return load


def gpus_for(pid: int, other_pid: int | None = None, other_bytes: int = 0) -> list[FakeGpu]:
    """One GPU where ``pid`` holds 3 GiB, shared with ``other_pid`` when given."""
    processes: list[tuple[int, int | None]] = [(pid, 3 * 1024**3)]
    if other_pid is not None:
        processes.append((other_pid, other_bytes))
    return [FakeGpu(uuid="GPU-attribution-0", processes=processes, memory_used=3 * 1024**3 + other_bytes)]


# What a child process's sitecustomize runs (tests/attribution/test_workers.py): this fake in
# pynvml's place, its load read from the simulator named by the environment.
SITECUSTOMIZE = """
import os, sys
if "ATTRIBUTION_SIM_URL" in os.environ:
    from tests.attribution.load_nvml import LoadNvml, gpus_for, stats_load
    sys.modules["pynvml"] = LoadNvml(gpus_for(int(os.environ["ATTRIBUTION_UPSTREAM_PID"])),
                                     stats_load(os.environ["ATTRIBUTION_SIM_URL"]))
"""
