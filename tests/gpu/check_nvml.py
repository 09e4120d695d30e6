"""Check the GPU collector on real NVML: ``python tests/gpu/check_nvml.py [--seconds 6]``.

Builds the collector exactly as ``infermeter serve`` does, puts a small CUDA load on
GPU 0 (torch, else cupy, else the CUDA driver API through ctypes, which every NVIDIA
driver ships), samples for a few seconds, prints every GPU series with its values and
checks that they are sane. Exit status: 0 all good, 1 a check failed, 2 no NVIDIA GPU.
"""

from __future__ import annotations

import argparse
import asyncio
import ctypes
import os
import sys
import threading
import time
from collections.abc import Callable
from pathlib import Path

# Runnable from a checkout without installing the package too.
sys.path.insert(0, str(Path(__file__).resolve().parents[2]))

from prometheus_client import CollectorRegistry, generate_latest
from prometheus_client.parser import text_string_to_metric_families

from proxy.collectors import build_collectors
from proxy.config import Settings

GPU_SERIES = (
    "infermeter_gpu_info",
    "infermeter_gpu_utilization_ratio",
    "infermeter_gpu_busy_seconds_total",
    "infermeter_gpu_memory_used_bytes",
    "infermeter_gpu_memory_total_bytes",
    "infermeter_gpu_power_watts",
    "infermeter_gpu_energy_joules_total",
    "infermeter_gpu_temperature_celsius",
    "infermeter_gpu_sm_clock_hertz",
    "infermeter_upstream_gpu_memory_used_bytes",
)

Reading = dict[tuple[str, str], float]  # (series, gpu index) -> value


def nvml_available() -> str | None:
    """None when NVML works here, else why not."""
    try:
        import pynvml  # type: ignore[import-untyped]
    except ImportError:
        return "pynvml (nvidia-ml-py) is not installed"
    try:
        pynvml.nvmlInit()
        count = pynvml.nvmlDeviceGetCount()
        pynvml.nvmlShutdown()
    except pynvml.NVMLError as exc:
        return f"NVML: {exc}"
    return None if count > 0 else "NVML sees no GPU"


def _torch_load(stop: threading.Event, running: threading.Event) -> str:
    import torch  # type: ignore[import-not-found]

    if not torch.cuda.is_available():
        raise RuntimeError("torch has no CUDA")
    a = torch.randn(4096, 4096, device="cuda:0")
    b = torch.randn(4096, 4096, device="cuda:0")
    running.set()
    while not stop.is_set():
        for _ in range(20):
            a = (a @ b).tanh_()
        torch.cuda.synchronize()
    return "torch matmul"


def _cupy_load(stop: threading.Event, running: threading.Event) -> str:
    import cupy  # type: ignore[import-not-found]

    with cupy.cuda.Device(0):
        a = cupy.random.rand(4096, 4096, dtype=cupy.float32)
        b = cupy.random.rand(4096, 4096, dtype=cupy.float32)
        running.set()
        while not stop.is_set():
            for _ in range(20):
                a = cupy.tanh(a @ b)
            cupy.cuda.Device(0).synchronize()
    return "cupy matmul"


def _driver_load(stop: threading.Event, running: threading.Event) -> str:
    cuda = ctypes.CDLL("libcuda.so.1")

    def check(result: int, what: str) -> None:
        if result != 0:
            raise RuntimeError(f"{what} returned CUDA error {result}")

    device, context, buffer = ctypes.c_int(), ctypes.c_void_p(), ctypes.c_uint64()
    check(cuda.cuInit(0), "cuInit")
    check(cuda.cuDeviceGet(ctypes.byref(device), 0), "cuDeviceGet")
    check(cuda.cuDevicePrimaryCtxRetain(ctypes.byref(context), device), "cuDevicePrimaryCtxRetain")
    check(cuda.cuCtxSetCurrent(context), "cuCtxSetCurrent")
    words = 256 * 1024 * 1024  # 1 GiB of 32-bit words
    check(cuda.cuMemAlloc_v2(ctypes.byref(buffer), ctypes.c_size_t(words * 4)), "cuMemAlloc")
    try:
        value = 0
        running.set()
        while not stop.is_set():
            for _ in range(50):
                value += 1
                check(cuda.cuMemsetD32_v2(buffer, ctypes.c_uint(value), ctypes.c_size_t(words)), "cuMemsetD32")
            check(cuda.cuCtxSynchronize(), "cuCtxSynchronize")
    finally:
        cuda.cuMemFree_v2(buffer)
        cuda.cuDevicePrimaryCtxRelease(device)
    return "CUDA driver memset"


class Load:
    """A CUDA load on GPU 0 in a thread, from the first library that works here."""

    def __init__(self) -> None:
        self.stop = threading.Event()
        self.running = threading.Event()
        self.done = threading.Event()
        self.kind = "none"
        self.errors: list[str] = []
        self.thread = threading.Thread(target=self._run, daemon=True)

    def _run(self) -> None:
        loads: list[tuple[str, Callable[[threading.Event, threading.Event], str]]] = [
            ("torch", _torch_load), ("cupy", _cupy_load), ("libcuda", _driver_load)
        ]
        try:
            for name, load in loads:
                self.kind = name
                try:
                    self.kind = load(self.stop, self.running)
                    return
                except Exception as exc:  # noqa: BLE001 - try the next library
                    self.errors.append(f"{name}: {type(exc).__name__}: {exc}")
                    if self.running.is_set():
                        return  # it ran, then broke: report it, keep its name
            self.kind = "none"
        finally:
            self.done.set()

    def wait_running(self, timeout: float) -> bool:
        """Wait until a load runs (CUDA start-up takes seconds) or every library failed."""
        deadline = time.monotonic() + timeout
        while not self.running.is_set() and not self.done.is_set() and time.monotonic() < deadline:
            time.sleep(0.05)
        return self.running.is_set()

    def __enter__(self) -> Load:
        self.thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop.set()
        self.thread.join(30)


def read(registry: CollectorRegistry) -> tuple[Reading, str]:
    text = generate_latest(registry).decode()
    reading: Reading = {}
    for family in text_string_to_metric_families(text):
        for sample in family.samples:
            if "gpu" in sample.labels:
                reading[(sample.name, sample.labels["gpu"])] = sample.value
    lines = [line for line in text.splitlines() if "gpu" in line and not line.startswith("#")]
    return reading, "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    parser.add_argument("--seconds", type=float, default=6.0, help="how long to sample under load")
    parser.add_argument("--interval", type=float, default=0.5, help="sample interval")
    args = parser.parse_args(argv)
    why = nvml_available()
    if why is not None:
        print(f"SKIP: no usable NVIDIA GPU here ({why})")
        return 2

    registry = CollectorRegistry()
    # The load runs in this process, so this process stands in for the upstream server.
    settings = Settings(collectors=("gpu",), sample_interval=args.interval, upstream_pid=os.getpid())
    collectors = build_collectors(settings, registry)
    failures: list[str] = []
    readings: list[tuple[float, Reading]] = []
    asyncio.run(collectors.start())
    try:
        with Load() as load:
            if not load.wait_running(60):
                print("no CUDA load could start; sampling an idle GPU")
            started = time.monotonic()
            while time.monotonic() - started < args.seconds:
                time.sleep(args.interval)
                reading, _ = read(registry)
                readings.append((time.monotonic(), reading))
                print(
                    f"t={time.monotonic() - started:4.1f}s load={load.kind:8s} "
                    + " ".join(
                        f"gpu{g}: util={reading.get(('infermeter_gpu_utilization_ratio', g), float('nan')):.2f} "
                        f"power={reading.get(('infermeter_gpu_power_watts', g), float('nan')):.0f}W "
                        f"busy={reading.get(('infermeter_gpu_busy_seconds_total', g), float('nan')):.2f}s"
                        for g in sorted({g for _, g in reading})
                    )
                )
        _, text = read(registry)
        status = collectors.sampler.status("gpu")
    finally:
        asyncio.run(collectors.stop())

    print(f"\nload: {load.kind}" + (f" (tried: {'; '.join(load.errors)})" if load.errors else ""))
    print(f"collector: success={status.success} last read {status.duration * 1000:.1f} ms\n")
    print(text + "\n")

    def check(ok: bool, what: str) -> None:
        print(("ok    " if ok else "FAIL  ") + what)
        if not ok:
            failures.append(what)

    check(status.success, "collector_success{collector=\"gpu\"} is 1")
    first_time, first = readings[0]
    last_time, last = readings[-1]
    gpus = sorted({g for _, g in last})
    check(bool(gpus), "at least one GPU exported")
    for g in gpus:
        def v(name: str, reading: Reading = last, gpu: str = g) -> float:
            return reading.get((name, gpu), float("nan"))

        missing = [name for name in GPU_SERIES if (name, g) not in last]
        check(not missing, f"gpu {g}: every series present" + (f" (missing {missing})" if missing else ""))
        utils = [r[("infermeter_gpu_utilization_ratio", g)] for _, r in readings if ("infermeter_gpu_utilization_ratio", g) in r]
        check(all(0.0 <= u <= 1.0 for u in utils), f"gpu {g}: utilization within 0-1 ({min(utils, default=-1):.2f}..{max(utils, default=-1):.2f})")
        check(v("infermeter_gpu_memory_used_bytes") <= v("infermeter_gpu_memory_total_bytes"),
              f"gpu {g}: memory used {v('infermeter_gpu_memory_used_bytes') / 2**30:.2f} GiB <= total {v('infermeter_gpu_memory_total_bytes') / 2**30:.2f} GiB")
        check(v("infermeter_gpu_power_watts") > 0, f"gpu {g}: power {v('infermeter_gpu_power_watts'):.1f} W > 0")
        check(10 <= v("infermeter_gpu_temperature_celsius") <= 110, f"gpu {g}: temperature {v('infermeter_gpu_temperature_celsius'):.0f} C within 10-110")
        check(v("infermeter_gpu_sm_clock_hertz") > 0, f"gpu {g}: SM clock {v('infermeter_gpu_sm_clock_hertz') / 1e6:.0f} MHz > 0")
        elapsed = last_time - first_time
        busy = v("infermeter_gpu_busy_seconds_total") - v("infermeter_gpu_busy_seconds_total", first)
        check(0 <= busy <= elapsed + 2 * args.interval, f"gpu {g}: busy seconds grew {busy:.2f} s in {elapsed:.2f} s")
        energy = v("infermeter_gpu_energy_joules_total") - v("infermeter_gpu_energy_joules_total", first)
        powers = [r[("infermeter_gpu_power_watts", g)] for _, r in readings if ("infermeter_gpu_power_watts", g) in r]
        expected = sum(powers) / max(len(powers), 1) * elapsed
        check(expected > 0 and 0.5 <= energy / expected <= 2.0,
              f"gpu {g}: energy grew {energy:.1f} J, about mean power x time = {expected:.1f} J (units agree)")
        if g == "0" and load.running.is_set():
            check(max(utils, default=0) >= 0.2, f"gpu 0: utilization under the {load.kind} load reached {max(utils, default=0):.2f} >= 0.2")
            check(busy > 0, "gpu 0: busy seconds grew under load")
            held = v("infermeter_upstream_gpu_memory_used_bytes")
            # In a container NVML reports host pids, which this process cannot match.
            print(("ok    " if held > 0 else "note  ") + f"gpu 0: memory held by this process {held / 2**20:.0f} MiB"
                  + ("" if held > 0 else " (0: NVML's pids are from another PID namespace, or memory accounting is off)"))
    print(f"\n{'PASS' if not failures else 'FAIL'}: {len(failures)} failed check(s)")
    return 1 if failures else 0


if __name__ == "__main__":
    sys.exit(main())
