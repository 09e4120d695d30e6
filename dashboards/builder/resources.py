"""The Resources dashboard: GPUs, host, the upstream process, the proxy and its collectors."""

from __future__ import annotations

from dashboards.builder.model import (
    Dashboard,
    Panel,
    Row,
    Target,
    VariableModel,
    dashboard,
    query_variable,
    scope_variables,
    stat,
    state_timeline,
    table,
    timeseries,
    value_mapping,
)
from dashboards.builder.promql import HOST, increase, rate, sel

GPU = HOST + ',gpu=~"$gpu"'
PER_GPU = "{{instance}} GPU {{gpu}}"
NOT_IDLE = 'mode!="idle"'
OK_FAILING = value_mapping({0: ("failing", "red"), 1: ("ok", "green")})


def gpu_gauge(title: str, description: str, unit: str, metric: str, width: int = 8) -> Panel:
    return timeseries(title, description, unit, Target(f"sum by (instance, gpu) ({sel(metric, GPU)})", PER_GPU),
                      width=width)


def gpus() -> list[Panel | Row]:
    busy = rate("infermeter_gpu_busy_seconds_total", GPU)
    used = f"sum by (instance, gpu) ({sel('infermeter_gpu_memory_used_bytes', GPU)})"
    total = f"sum by (instance, gpu) ({sel('infermeter_gpu_memory_total_bytes', GPU)})"
    return [
        Row("GPU"),
        timeseries("GPU utilization", "Share of time a kernel ran on each GPU, averaged exactly over the interval: "
                   "rate() of infermeter_gpu_busy_seconds_total, which the sampler integrates from NVML's "
                   "utilization. Fleet mean is the average over the selected GPUs.", "percentunit",
                   Target(f"sum by (instance, gpu) ({busy})", PER_GPU), Target(f"avg({busy})", "fleet mean"),
                   max_value=1),
        timeseries("GPU memory used and total", "Device memory in use (by every process) and installed, per GPU.",
                   "bytes", Target(used, PER_GPU + " used"), Target(total, PER_GPU + " total")),
        gpu_gauge("Upstream's GPU memory", "Device memory held by the upstream server's own process, per GPU: the "
                  "model weights and KV cache, without other tenants.", "bytes",
                  "infermeter_upstream_gpu_memory_used_bytes"),
        timeseries("GPU memory used share", "Used / total device memory per GPU. vLLM reserves about 90% "
                   "(--gpu-memory-utilization) at start; the alert fires above 95%.", "percentunit",
                   Target(f"{used} / {total}", PER_GPU), width=8, max_value=1),
        gpu_gauge("GPU power", "Board power draw per GPU, as NVML reports it.", "watt", "infermeter_gpu_power_watts"),
        stat("GPU energy over range", "Energy the selected GPUs used during the dashboard's time range: increase() "
             "of the NVML energy counter, summed.", "joule",
             Target(f"sum({increase('infermeter_gpu_energy_joules_total', GPU)})"), width=6, height=8, graph=False),
        gpu_gauge("GPU temperature", "GPU core temperature per GPU, as NVML reports it; throttling starts in the 80s.", "celsius", "infermeter_gpu_temperature_celsius",
                  width=9),
        gpu_gauge("GPU SM clock", "Streaming-multiprocessor clock per GPU; a drop under load points at power or "
                  "thermal throttling.", "hertz", "infermeter_gpu_sm_clock_hertz", width=9),
        table("GPU inventory", "One row per GPU the sidecars see: index, UUID, model name and driver version.",
              Target(sel("infermeter_gpu_info", GPU)), hide=("Time", "Value", "__name__"), width=24),
    ]


def host() -> list[Panel | Row]:
    cpu_total = f"sum by (instance) ({rate('infermeter_host_cpu_seconds_total', HOST)})"
    cpu_busy = f"sum by (instance, mode) ({rate('infermeter_host_cpu_seconds_total', HOST, NOT_IDLE)})"
    available = sel("infermeter_host_memory_available_bytes", HOST)
    total = sel("infermeter_host_memory_total_bytes", HOST)
    return [
        Row("Host"),
        timeseries("Host CPU by mode", "Share of the host's CPU capacity per mode (user, system, iowait, other), "
                   "idle left out: CPU seconds per second in the mode / CPU seconds per second in all modes.",
                   "percentunit", Target(f"{cpu_busy} / on (instance) group_left {cpu_total}", "{{instance}} {{mode}}"),
                   stack=True, max_value=1),
        timeseries("Host memory", "Memory in use (total - available) and still available, per host.", "bytes",
                   Target(f"sum by (instance) ({total} - {available})", "{{instance}} used"),
                   Target(f"sum by (instance) ({available})", "{{instance}} available")),
    ]


def processes() -> list[Panel | Row]:
    upstream_cpu = rate("infermeter_upstream_process_cpu_seconds_total", HOST)
    proxy_cpu = rate("process_cpu_seconds_total", HOST)
    return [
        Row("Processes"),
        timeseries("Upstream process memory", "Resident memory of the upstream server process (found by its port, "
                   "or --upstream-pid), per instance.", "bytes",
                   Target(f"sum by (instance) ({sel('infermeter_upstream_process_resident_memory_bytes', HOST)})",
                          "{{instance}}"), width=6),
        timeseries("Upstream process CPU", "CPU seconds per second the upstream process used: 1 is one full core.",
                   "suffix:cores", Target(f"sum by (instance) ({upstream_cpu})", "{{instance}}"), width=6),
        timeseries("Proxy CPU", "CPU seconds per second the infermeter sidecar itself used: its overhead.",
                   "suffix:cores", Target(f"sum by (instance) ({proxy_cpu})", "{{instance}}"), width=6),
        timeseries("Proxy memory", "Resident memory of the infermeter sidecar process.", "bytes",
                   Target(f"sum by (instance) ({sel('process_resident_memory_bytes', HOST)})", "{{instance}}"),
                   width=6),
    ]


def collectors() -> list[Panel | Row]:
    return [
        Row("Collectors"),
        state_timeline("Collector health", "Whether each collector's last run succeeded. A GPU collector reads "
                       "failing where NVML is absent; start the proxy with --collectors system,upstream there.",
                       Target(f"min by (instance, collector) ({sel('infermeter_collector_success', HOST)})",
                              "{{instance}} {{collector}}"), mappings=OK_FAILING, width=12, height=8),
        timeseries("Collector duration", "How long each collector's last run took; it runs off the event loop, so "
                   "a slow one delays samples, not requests.", "s",
                   Target(f"max by (instance, collector) ({sel('infermeter_collector_duration_seconds', HOST)})",
                          "{{instance}} {{collector}}")),
    ]


def variables() -> list[VariableModel]:
    return [
        *scope_variables(),
        query_variable("gpu", "GPU", 'label_values(infermeter_gpu_info{job=~"$job",instance=~"$instance"}, gpu)'),
    ]


def build() -> Dashboard:
    return dashboard("infermeter-resources", "infermeter / Resources",
                     "What the LLM server runs on, sampled by the infermeter sidecar: GPU utilization, memory, power "
                     "and clocks; host CPU and memory; the upstream and proxy processes; collector health.",
                     [*gpus(), *host(), *processes(), *collectors()], variables())
