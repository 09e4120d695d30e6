"""A stand-in for the ``pynvml`` module, for machines without an NVIDIA GPU.

It has pynvml's function names and signatures (a test compares them with the real
module), returns pynvml's own structures and units (percent, bytes, milliwatts,
millijoules, degrees Celsius, MHz) and raises the real ``pynvml.NVMLError``. A GPU can
fail some calls with an NVML error code, or hang in one until released.
"""

from __future__ import annotations

import threading
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import pynvml  # type: ignore[import-untyped]


@dataclass
class FakeGpu:
    uuid: str
    name: str = "NVIDIA H100 80GB HBM3"
    utilization: int | Callable[[], int] = 0  # percent, or a schedule read at each call
    memory_total: int = 80 * 1024**3
    memory_used: int = 0
    power_mw: int = 70_000
    energy_mj: int = 1_000_000
    temperature: int = 35
    sm_clock_mhz: int = 1980
    processes: list[tuple[int, int | None]] = field(default_factory=list)  # (pid, bytes)
    errors: dict[str, int] = field(default_factory=dict)  # call name ("*" for all) -> NVML_ERROR_*
    hang_in: str | None = None  # call that blocks until ``release`` is set
    release: threading.Event = field(default_factory=threading.Event)


@dataclass(frozen=True)
class _Handle:
    index: int


class FakeNvml:
    NVMLError = pynvml.NVMLError
    NVML_TEMPERATURE_GPU = pynvml.NVML_TEMPERATURE_GPU
    NVML_CLOCK_SM = pynvml.NVML_CLOCK_SM

    def __init__(self, gpus: list[FakeGpu], driver: str = "550.54.15", init_error: int | None = None) -> None:
        self.gpus = gpus
        self.driver = driver
        self.init_error = init_error
        self.initialised = False
        self.calls: dict[str, int] = {}

    def _gpu(self, handle: _Handle, call: str) -> FakeGpu:
        if not self.initialised:
            raise pynvml.NVMLError(pynvml.NVML_ERROR_UNINITIALIZED)
        self.calls[call] = self.calls.get(call, 0) + 1
        gpu = self.gpus[handle.index]
        code = gpu.errors.get(call, gpu.errors.get("*"))
        if code is not None:
            raise pynvml.NVMLError(code)
        if gpu.hang_in == call:
            gpu.release.wait(30)
        return gpu

    def nvmlInit(self) -> None:
        if self.init_error is not None:
            raise pynvml.NVMLError(self.init_error)
        self.initialised = True

    def nvmlShutdown(self) -> None:
        self.initialised = False

    def nvmlSystemGetDriverVersion(self) -> str:
        return self.driver

    def nvmlDeviceGetCount(self) -> int:
        return len(self.gpus)

    def nvmlDeviceGetHandleByIndex(self, index: int) -> _Handle:
        if not 0 <= index < len(self.gpus):
            raise pynvml.NVMLError(pynvml.NVML_ERROR_INVALID_ARGUMENT)
        return _Handle(index)

    def nvmlDeviceGetUUID(self, handle: _Handle) -> str:
        return self._gpu(handle, "nvmlDeviceGetUUID").uuid

    def nvmlDeviceGetName(self, handle: _Handle) -> str:
        return self._gpu(handle, "nvmlDeviceGetName").name

    def nvmlDeviceGetUtilizationRates(self, handle: _Handle) -> Any:
        gpu = self._gpu(handle, "nvmlDeviceGetUtilizationRates")
        percent = gpu.utilization() if callable(gpu.utilization) else gpu.utilization
        return pynvml.c_nvmlUtilization_t(gpu=percent, memory=percent // 2)

    def nvmlDeviceGetMemoryInfo(self, handle: _Handle, version: Any = None) -> Any:
        gpu = self._gpu(handle, "nvmlDeviceGetMemoryInfo")
        return pynvml.c_nvmlMemory_t(
            total=gpu.memory_total, free=gpu.memory_total - gpu.memory_used, used=gpu.memory_used
        )

    def nvmlDeviceGetPowerUsage(self, handle: _Handle) -> int:
        return self._gpu(handle, "nvmlDeviceGetPowerUsage").power_mw

    def nvmlDeviceGetTotalEnergyConsumption(self, handle: _Handle) -> int:
        return self._gpu(handle, "nvmlDeviceGetTotalEnergyConsumption").energy_mj

    def nvmlDeviceGetTemperature(self, handle: _Handle, sensor: int) -> int:
        gpu = self._gpu(handle, "nvmlDeviceGetTemperature")
        if sensor != pynvml.NVML_TEMPERATURE_GPU:
            raise pynvml.NVMLError(pynvml.NVML_ERROR_INVALID_ARGUMENT)
        return gpu.temperature

    def nvmlDeviceGetClockInfo(self, handle: _Handle, type: int) -> int:
        gpu = self._gpu(handle, "nvmlDeviceGetClockInfo")
        if type != pynvml.NVML_CLOCK_SM:
            raise pynvml.NVMLError(pynvml.NVML_ERROR_INVALID_ARGUMENT)
        return gpu.sm_clock_mhz

    def nvmlDeviceGetComputeRunningProcesses(self, handle: _Handle) -> list[Any]:
        gpu = self._gpu(handle, "nvmlDeviceGetComputeRunningProcesses")
        return [_process(pid, used) for pid, used in gpu.processes]

    def nvmlDeviceGetGraphicsRunningProcesses(self, handle: _Handle) -> list[Any]:
        self._gpu(handle, "nvmlDeviceGetGraphicsRunningProcesses")
        return []


def _process(pid: int, used: int | None) -> Any:
    # pynvml turns c_nvmlProcessInfo_v3_t into a friendly object, None for "not available".
    return pynvml.nvmlFriendlyObject({"pid": pid, "usedGpuMemory": used, "gpuInstanceId": 0, "computeInstanceId": 0})
