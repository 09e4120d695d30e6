"""NVIDIA GPUs through NVML: utilization, busy time, memory, power, energy, temperature, clock.

The NVML module is a parameter (pynvml by default, imported on first read), so tests
can hand in an object with pynvml's function names, signatures and units. NVML reports
percent, bytes, milliwatts, millijoules, degrees Celsius and MHz; everything here is
exported in base units: ratio 0-1, bytes, watts, joules, degrees Celsius, hertz.

No pynvml, no driver or a failing ``nvmlInit`` make this collector report success 0 and
nothing else (the sampler logs the reason once); initialisation is retried every
``retry_interval`` seconds in case a driver comes back. A collector that is not
``required`` (the default ``--collectors``, which nobody chose for this host) treats a
host with no driver as a host with no GPU: one INFO line, no series, success 1.
"""

from __future__ import annotations

import importlib
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any

from prometheus_client.metrics_core import (
    CounterMetricFamily,
    GaugeMetricFamily,
    Metric,
)

from proxy.collectors.base import Sample, log
from proxy.collectors.locator import UpstreamProcessLocator

# NVML_ERROR_* codes (nvml.h); pynvml's NVMLError carries them as ``.value``.
_UNINITIALIZED = 1
_NOT_SUPPORTED = 3
_NOT_FOUND = 6
_DRIVER_NOT_LOADED = 9
_LIBRARY_NOT_FOUND = 12
_FUNCTION_NOT_FOUND = 13  # the driver is older than the call
_LIB_RM_VERSION_MISMATCH = 18  # the driver was upgraded under us
# After these NVML itself is unusable, not one device: shut down and initialise again later.
_REINIT = frozenset({_UNINITIALIZED, _DRIVER_NOT_LOADED, _LIB_RM_VERSION_MISMATCH})

_LABELS = ["gpu", "uuid"]

_Family = GaugeMetricFamily | CounterMetricFamily


@dataclass
class _Device:
    index: int
    handle: Any
    uuid: str
    name: str
    unsupported: set[str] = field(default_factory=set)
    busy_seconds: float = 0.0
    util_at: float | None = None
    energy_estimate: float = 0.0
    power_at: float | None = None
    # For attribution (proxy.attribution): the energy counter last read, J, and the
    # upstream's share of this GPU (None: unknown).
    energy_joules: float | None = None
    upstream_share: float | None = None
    process_util_at: int = 0


@dataclass(frozen=True)
class GpuReading:
    """One GPU's cumulative busy seconds and energy (J) after a read, and the share of it
    the upstream's processes hold (None: unknown, 0: none of it)."""

    index: int
    busy_seconds: float
    energy_joules: float | None
    energy_from_power: bool
    upstream_share: float | None


class _Reinit(Exception):
    pass


class GpuCollector:
    name = "gpu"

    def __init__(
        self,
        nvml: Any = None,
        locator: UpstreamProcessLocator | None = None,
        clock: Callable[[], float] = time.monotonic,
        retry_interval: float = 30.0,
        required: bool = True,
        sink: Callable[[list[GpuReading]], None] | None = None,
    ) -> None:
        self._nvml = nvml
        # Called with every complete read, in the sampler's thread (attribution).
        self._sink = sink
        self._required = required
        # Why there is no GPU to read on this host (no driver, no pynvml), until NVML starts.
        self._absent: str | None = None
        self._locator = locator
        self._clock = clock
        self._retry_interval = retry_interval
        self._devices: list[_Device] | None = None
        self._driver = ""
        self._init_error: str | None = None
        self._init_at: float | None = None
        self._initialised = False

    def describe(self) -> Sequence[Metric]:
        return list(_families().values())

    def close(self) -> None:
        if self._initialised and self._nvml is not None:
            self._initialised = False
            try:
                self._nvml.nvmlShutdown()
            except Exception as exc:  # noqa: BLE001 - nothing useful to do at shutdown
                log.debug("nvmlShutdown failed: %s", exc)

    def sample(self) -> Sample:
        error = self._ensure_ready()
        if self._absent is not None and not self._required:
            return Sample(())
        if error is not None or self._devices is None:
            return Sample((), ok=False, error=error)
        families = _families()
        errors: list[str] = []
        pids = self._locator.pids() if self._locator is not None else None
        try:
            for device in self._devices:
                self._read_device(device, families, pids, errors)
        except _Reinit as exc:
            self.close()
            self._devices = None
            self._init_at = self._clock()
            self._init_error = f"NVML stopped working ({exc}); initialising again in {self._retry_interval:.0f} s"
            return Sample((), ok=False, error=self._init_error)
        if self._sink is not None:
            self._sink([_reading(d) for d in self._devices])
        return Sample(tuple(families.values()), ok=not errors, error="; ".join(errors) or None)

    def _ensure_ready(self) -> str | None:
        if self._devices is not None:
            return None
        now = self._clock()
        if self._init_at is not None and now - self._init_at < self._retry_interval:
            return self._init_error
        self._init_at = now
        was_absent = self._absent
        self._init_error = self._init()
        if self._absent is not None and self._absent != was_absent and not self._required:
            log.info("%s: GPU series off", self._absent)
        return self._init_error

    def _init(self) -> str | None:
        self._absent = None
        if self._nvml is None:
            try:
                self._nvml = importlib.import_module("pynvml")
            except ImportError:
                self._absent = None if self._driver else "no NVML module (pip install nvidia-ml-py)"
                return "NVML unavailable: the pynvml module is missing (pip install nvidia-ml-py); GPU series are off"
        nvml = self._nvml
        try:
            nvml.nvmlInit()
            self._initialised = True
            self._driver = _text(nvml.nvmlSystemGetDriverVersion())
            count = int(nvml.nvmlDeviceGetCount())
            devices = []
            for index in range(count):
                handle = nvml.nvmlDeviceGetHandleByIndex(index)
                uuid = _text(nvml.nvmlDeviceGetUUID(handle))
                name = _text(nvml.nvmlDeviceGetName(handle))
                devices.append(_Device(index=index, handle=handle, uuid=uuid, name=name))
        except nvml.NVMLError as exc:
            self.close()
            hint = ""
            if getattr(exc, "value", None) in (_LIBRARY_NOT_FOUND, _DRIVER_NOT_LOADED):
                # A driver that was here and went away is a failure, even when optional.
                self._absent = None if self._driver else "no NVIDIA driver"
                hint = " (no NVIDIA driver here; drop gpu from --collectors to silence this)"
            return f"NVML unavailable: {exc}{hint}; GPU series are off"
        self._devices = devices
        log.info(
            "gpu collector: NVML driver %s, %d GPU(s): %s",
            self._driver,
            len(devices),
            ", ".join(f"{d.index} {d.name}" for d in devices) or "none",
        )
        return None

    def _read_device(
        self, dev: _Device, families: dict[str, _Family], pids: frozenset[int] | None, errors: list[str]
    ) -> None:
        nvml = self._nvml
        labels = [str(dev.index), dev.uuid]

        def read(what: str, call: str, *args: Any) -> Any:
            if what in dev.unsupported:
                return None
            try:
                return getattr(nvml, call)(dev.handle, *args)
            except AttributeError:
                dev.unsupported.add(what)  # an older pynvml without this call
            except nvml.NVMLError as exc:
                code = getattr(exc, "value", None)
                if code in (_NOT_SUPPORTED, _FUNCTION_NOT_FOUND):
                    dev.unsupported.add(what)
                elif code in _REINIT:
                    raise _Reinit(str(exc)) from exc
                else:
                    errors.append(f"gpu {dev.index} {what}: {exc}")
            return None

        families["info"].add_metric([*labels, dev.name, self._driver], 1.0)
        util = read("utilization", "nvmlDeviceGetUtilizationRates")
        if util is not None:
            now = self._clock()
            ratio = min(max(float(util.gpu) / 100.0, 0.0), 1.0)
            # NVML's figure is the busy share of its last sampling period, so it stands
            # for the interval just ended: the right-endpoint rule over elapsed time.
            if dev.util_at is not None:
                dev.busy_seconds += ratio * max(now - dev.util_at, 0.0)
            dev.util_at = now
            families["utilization"].add_metric(labels, ratio)
            families["busy"].add_metric(labels, dev.busy_seconds)
        memory = read("memory", "nvmlDeviceGetMemoryInfo")
        if memory is not None:
            families["memory_used"].add_metric(labels, float(memory.used))
            families["memory_total"].add_metric(labels, float(memory.total))
        milliwatts = read("power", "nvmlDeviceGetPowerUsage")
        if milliwatts is not None:
            families["power"].add_metric(labels, float(milliwatts) / 1000.0)
        joules = self._read_energy(dev, read("energy", "nvmlDeviceGetTotalEnergyConsumption"), milliwatts)
        if joules is not None:
            families["energy"].add_metric(labels, joules)
        celsius = read("temperature", "nvmlDeviceGetTemperature", getattr(nvml, "NVML_TEMPERATURE_GPU", 0))
        if celsius is not None:
            families["temperature"].add_metric(labels, float(celsius))
        mhz = read("sm clock", "nvmlDeviceGetClockInfo", getattr(nvml, "NVML_CLOCK_SM", 1))
        if mhz is not None:
            families["sm_clock"].add_metric(labels, float(mhz) * 1e6)
        if pids is not None:
            self._read_upstream_memory(dev, read, labels, families, pids)

    def _read_energy(self, dev: _Device, millijoules: Any, milliwatts: Any) -> float | None:
        """The energy counter in joules, else the power integrated over time; None when neither
        was read. Kept on ``dev`` for attribution."""
        if millijoules is not None:
            dev.energy_joules = float(millijoules) / 1000.0
            return dev.energy_joules
        if "energy" not in dev.unsupported or milliwatts is None:
            return None
        # GPUs before Volta have no energy counter: integrate power instead.
        now = self._clock()
        if dev.power_at is not None:
            dev.energy_estimate += float(milliwatts) / 1000.0 * max(now - dev.power_at, 0.0)
        dev.power_at = now
        dev.energy_joules = dev.energy_estimate
        return dev.energy_joules

    def _read_upstream_memory(
        self,
        dev: _Device,
        read: Callable[..., Any],
        labels: list[str],
        families: dict[str, _Family],
        pids: frozenset[int],
    ) -> None:
        used = process_bytes = 0
        seen: set[int] = set()
        every: set[int] = set()
        answered = False
        for what, call in (
            ("compute processes", "nvmlDeviceGetComputeRunningProcesses"),
            ("graphics processes", "nvmlDeviceGetGraphicsRunningProcesses"),
        ):
            procs = read(what, call)
            if procs is None:
                continue
            answered = True
            for proc in procs:
                memory = getattr(proc, "usedGpuMemory", None)
                if memory is not None and proc.pid not in every:
                    every.add(proc.pid)
                    process_bytes += int(memory)
                # A process can be in both lists; None is NVML's "not available" (WDDM, MIG).
                if proc.pid in pids and proc.pid not in seen and memory is not None:
                    seen.add(proc.pid)
                    used += int(memory)
        if answered:
            families["upstream_memory"].add_metric(labels, float(used))
            dev.upstream_share = self._utilization_share(dev, pids)
            if dev.upstream_share is None:
                dev.upstream_share = used / process_bytes if process_bytes else 0.0

    def _utilization_share(self, dev: _Device, pids: frozenset[int]) -> float | None:
        # NVML's per-process SM utilization since the last read, where the GPU reports it.
        if "process utilization" in dev.unsupported:
            return None
        try:
            samples = self._nvml.nvmlDeviceGetProcessUtilization(dev.handle, dev.process_util_at)
        except AttributeError:
            samples = None
        except self._nvml.NVMLError as exc:
            # NOT_FOUND: no process ran a kernel since the last read; use memory this time.
            if getattr(exc, "value", None) != _NOT_FOUND:
                dev.unsupported.add("process utilization")
            return None
        if not samples:
            if samples is None:
                dev.unsupported.add("process utilization")
            return None
        total = sum(int(p.smUtil) for p in samples)
        dev.process_util_at = max(int(p.timeStamp) for p in samples)
        if total <= 0:
            return None
        return sum(int(p.smUtil) for p in samples if p.pid in pids) / total


def _reading(dev: _Device) -> GpuReading:
    return GpuReading(dev.index, dev.busy_seconds, dev.energy_joules, "energy" in dev.unsupported, dev.upstream_share)


def _text(value: Any) -> str:
    # pynvml returned bytes before 11.5 and str since; accept both.
    return value.decode("utf-8", "replace") if isinstance(value, bytes) else str(value)


def _families() -> dict[str, _Family]:
    def gauge(name: str, doc: str) -> GaugeMetricFamily:
        return GaugeMetricFamily(name, doc, labels=_LABELS)

    def counter(name: str, doc: str) -> CounterMetricFamily:
        return CounterMetricFamily(name, doc, labels=_LABELS)

    return {
        "info": GaugeMetricFamily(
            "infermeter_gpu_info", "GPUs NVML sees (always 1).", labels=[*_LABELS, "name", "driver_version"]
        ),
        "utilization": gauge("infermeter_gpu_utilization_ratio", "Share of NVML's last sampling period with a kernel running."),
        "busy": counter(
            "infermeter_gpu_busy_seconds",
            "Utilization integrated over time by the sampler: rate() is the true average over any window.",
        ),
        "memory_used": gauge("infermeter_gpu_memory_used_bytes", "GPU memory in use."),
        "memory_total": gauge("infermeter_gpu_memory_total_bytes", "GPU memory installed."),
        "power": gauge("infermeter_gpu_power_watts", "Power drawn by the GPU."),
        "energy": counter(
            "infermeter_gpu_energy_joules",
            "Energy used since the driver loaded (estimated from power on GPUs without an energy counter).",
        ),
        "temperature": gauge("infermeter_gpu_temperature_celsius", "GPU core temperature."),
        "sm_clock": gauge("infermeter_gpu_sm_clock_hertz", "Current SM clock."),
        "upstream_memory": gauge(
            "infermeter_upstream_gpu_memory_used_bytes", "GPU memory held by the upstream process and its children."
        ),
    }
