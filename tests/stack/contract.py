"""The metric contract of DESIGN.md section 6, as the dashboards and rules may use it.

Kept here rather than parsed from DESIGN.md, which CI does not check out beside the
repository. The live test holds both this list and the dashboards to a running proxy.
"""

from __future__ import annotations

from pathlib import Path

# name -> (type, labels)
FAMILIES: dict[str, tuple[str, frozenset[str]]] = {
    name: (kind, frozenset(labels.split()))
    for name, kind, labels in [
        ("infermeter_requests_total", "counter", "endpoint model code outcome"),
        ("infermeter_requests_in_flight", "gauge", "endpoint"),
        ("infermeter_request_duration_seconds", "histogram", "endpoint model stream"),
        ("infermeter_upstream_response_headers_seconds", "histogram", "endpoint"),
        ("infermeter_time_to_first_token_seconds", "histogram", "endpoint model"),
        ("infermeter_time_between_tokens_seconds", "histogram", "endpoint model"),
        ("infermeter_time_per_output_token_seconds", "histogram", "endpoint model"),
        ("infermeter_output_tokens_per_second", "histogram", "endpoint model"),
        ("infermeter_tokens_total", "counter", "endpoint model type"),
        ("infermeter_request_tokens", "histogram", "endpoint model type"),
        ("infermeter_finish_reasons_total", "counter", "endpoint model reason"),
        ("infermeter_token_counts_estimated_total", "counter", "endpoint"),
        ("infermeter_stream_parse_errors_total", "counter", "endpoint"),
        ("infermeter_slo_requests_total", "counter", "endpoint model result"),
        ("infermeter_upstream_phase_seconds", "histogram", "endpoint model phase"),
        ("infermeter_cached_input_tokens_total", "counter", "endpoint model"),
        ("infermeter_reasoning_output_tokens_total", "counter", "endpoint model"),
        ("infermeter_upstream_up", "gauge", ""),
        ("infermeter_upstream_uptime_seconds", "gauge", ""),
        ("infermeter_upstream_probe_duration_seconds", "histogram", ""),
        ("infermeter_upstream_probes_total", "counter", "result"),
        ("infermeter_upstream_process_resident_memory_bytes", "gauge", ""),
        ("infermeter_upstream_process_cpu_seconds_total", "counter", ""),
        ("infermeter_upstream_process_start_time_seconds", "gauge", ""),
        ("infermeter_host_memory_total_bytes", "gauge", ""),
        ("infermeter_host_memory_available_bytes", "gauge", ""),
        ("infermeter_host_cpu_seconds_total", "counter", "mode"),
        ("infermeter_gpu_info", "gauge", "gpu uuid name driver_version"),
        ("infermeter_gpu_utilization_ratio", "gauge", "gpu uuid"),
        ("infermeter_gpu_busy_seconds_total", "counter", "gpu uuid"),
        ("infermeter_gpu_memory_used_bytes", "gauge", "gpu uuid"),
        ("infermeter_gpu_memory_total_bytes", "gauge", "gpu uuid"),
        ("infermeter_gpu_power_watts", "gauge", "gpu uuid"),
        ("infermeter_gpu_energy_joules_total", "counter", "gpu uuid"),
        ("infermeter_gpu_temperature_celsius", "gauge", "gpu uuid"),
        ("infermeter_gpu_sm_clock_hertz", "gauge", "gpu uuid"),
        ("infermeter_upstream_gpu_memory_used_bytes", "gauge", "gpu uuid"),
        ("infermeter_collector_success", "gauge", "collector"),
        ("infermeter_collector_duration_seconds", "gauge", "collector"),
        ("infermeter_build_info", "gauge", "version"),
        # Per tenant (DESIGN.md section 14), only with --tenant-header or --tenant-keys.
        ("infermeter_tenant_requests_total", "counter", "tenant model outcome"),
        ("infermeter_tenant_tokens_total", "counter", "tenant model type"),
        ("infermeter_tenant_slo_requests_total", "counter", "tenant model result"),
        # GPU attribution (DESIGN.md section 14), wherever a GPU is read; tenant "none" without a source.
        ("infermeter_gpu_attributed_seconds_total", "counter", "tenant model"),
        ("infermeter_gpu_attributed_energy_joules_total", "counter", "tenant model"),
        ("infermeter_gpu_unattributed_seconds_total", "counter", ""),
        ("infermeter_gpu_unattributed_energy_joules_total", "counter", ""),
        # Prices for the cost rules, each only when its flag is set (--gpu-hour-cost, --energy-kwh-cost).
        ("infermeter_gpu_hour_cost", "gauge", ""),
        ("infermeter_energy_kwh_cost", "gauge", ""),
        # Response checks and evaluations (DESIGN.md section 15).
        ("infermeter_response_checks_total", "counter", "endpoint model check result"),
        ("infermeter_eval_score", "histogram", "model rubric"),
        ("infermeter_evals_total", "counter", "rubric outcome"),
        # prometheus-client's standard process collector (DESIGN.md: the proxy's own
        # process metrics and its uptime) and Prometheus's own scrape health.
        ("process_cpu_seconds_total", "counter", ""),
        ("process_resident_memory_bytes", "gauge", ""),
        ("process_start_time_seconds", "gauge", ""),
        ("up", "gauge", ""),
    ]
}

HISTOGRAM_SUFFIXES = ("_bucket", "_sum", "_count")


def sample_names() -> dict[str, str]:
    """Every series name a query may select, mapped to its family."""
    names: dict[str, str] = {}
    for family, (kind, _) in FAMILIES.items():
        if kind == "histogram":
            names.update({family + suffix: family for suffix in HISTOGRAM_SUFFIXES})
        else:
            names[family] = family
    return names


def labels_of(series: str) -> frozenset[str]:
    family = sample_names()[series]
    labels = FAMILIES[family][1]
    return labels | {"le"} if series.endswith("_bucket") else labels


def needs_gpu(series: str) -> bool:
    """Series only a sidecar that sees an NVIDIA GPU through NVML exports."""
    return series.startswith(("infermeter_gpu_", "infermeter_upstream_gpu_"))


def needs_judge(series: str) -> bool:
    """Series exported only when a judge is set (--eval-url, DESIGN.md section 15)."""
    return series.startswith(("infermeter_eval_score", "infermeter_evals_total"))


def needs_upstream_report(series: str) -> bool:
    """Series observed only when the upstream reports per-request phases (section 13)."""
    return series.startswith("infermeter_upstream_phase_seconds")


# The engines' own series (DESIGN.md section 13) are not infermeter's: the rules in
# engines.yml may read those that a recorded exposition of the engine holds.
ENGINE_FIXTURES = Path(__file__).resolve().parent / "fixtures" / "engines"


def engine_sample_names() -> dict[str, str]:
    """Every sample name in the recorded engine expositions, mapped to its fixture."""
    names: dict[str, str] = {}
    for path in sorted(ENGINE_FIXTURES.glob("*.prom")):
        for line in path.read_text(encoding="utf-8").splitlines():
            if line and not line.startswith("#"):
                names.setdefault(line.split("{", 1)[0].split(" ", 1)[0], path.stem)
    return names
