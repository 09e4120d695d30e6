"""The Usage dashboard: for whom, and at what cost (DESIGN.md section 14, docs/attribution.md).

Top tenants over the dashboard's range by tokens, GPU hours, energy and cost; GPU time,
energy and joules per output token over time; each tenant's goodput where SLOs are set.
Tenant series need --tenant-header or --tenant-keys (else every request is tenant "none");
GPU time and energy need a GPU the sidecar reads; cost needs --gpu-hour-cost and/or
--energy-kwh-cost.
"""

from __future__ import annotations

from dashboards.builder.model import (
    Dashboard,
    Panel,
    Row,
    Target,
    dashboard,
    query_variable,
    request_variables,
    table,
    timeseries,
)
from dashboards.builder.promql import HOST, RANGE, increase, rate, sel

TENANT = HOST + ',model=~"$model",tenant=~"$tenant"'
TOKENS = "infermeter_tenant_tokens_total"
SECONDS = "infermeter_gpu_attributed_seconds_total"
JOULES = "infermeter_gpu_attributed_energy_joules_total"
UNATTRIBUTED = "infermeter_gpu_unattributed_energy_joules_total"
SLO = "infermeter_tenant_slo_requests_total"
TOP = 10
IN_OUT = 'type=~"input|output"'
MODEL = 'model=~"$model"'
OUTPUT = 'model=~"$model",type="output"'
MET = 'result="met"'


def cost(by: str, window: str) -> str:
    """Attributed GPU hours x the GPU-hour price plus kWh x the kWh price, per ``by``; either
    part alone where only its price is set."""
    hours = f"sum by ({by}) ({increase(SECONDS, TENANT, window=window)}) / 3600"
    kwh = f"sum by ({by}) ({increase(JOULES, TENANT, window=window)}) / 3.6e6"
    gpu = f"{hours} * on () group_left () max({sel('infermeter_gpu_hour_cost', HOST)})"
    energy = f"{kwh} * on () group_left () max({sel('infermeter_energy_kwh_cost', HOST)})"
    return f"({gpu} or 0 * {energy}) + ({energy} or 0 * {gpu})"


def top() -> list[Panel | Row]:
    tokens = f"topk({TOP}, sum by (tenant) ({increase(TOKENS, TENANT, IN_OUT)}))"
    hours = f"topk({TOP}, sum by (tenant) ({increase(SECONDS, TENANT)}) / 3600)"
    kwh = f"topk({TOP}, sum by (tenant) ({increase(JOULES, TENANT)}) / 3.6e6)"
    return [
        Row("Top tenants over the range"),
        table("Top tenants by tokens", f"Input + output tokens per tenant over the dashboard's time range ({RANGE}), "
              "the ten largest, summed over the selected instances and models.",
              Target(tokens), hide=("Time",), width=6, height=8),
        table("Top tenants by GPU hours", "GPU busy time attributed to each tenant's requests over the range, in "
              "hours: each sampling interval's utilization x interval, split among the requests in flight by "
              "their work (docs/attribution.md). The ten largest.", Target(hours), hide=("Time",), width=6, height=8),
        table("Top tenants by energy", "GPU energy attributed to each tenant's requests over the range, in kWh "
              "(NVML's energy counter, or power x time where the GPU has none). The ten largest.",
              Target(kwh), hide=("Time",), width=6, height=8),
        table("Top tenants by cost", "GPU hours x --gpu-hour-cost plus kWh x --energy-kwh-cost per tenant over "
              "the range, in the currency of the prices set. The ten largest.",
              Target(f"topk({TOP}, {cost('tenant', RANGE)})"), hide=("Time",), width=6, height=8),
    ]


def over_time() -> list[Panel | Row]:
    per_token = (f"sum by (model) ({rate(JOULES, HOST, MODEL)}) / sum by (model) "
                 f"({rate('infermeter_tokens_total', HOST, OUTPUT)})")
    attributed = f"sum({rate(JOULES, HOST)})"
    unattributed = f"sum({rate(UNATTRIBUTED, HOST)})"
    return [
        Row("GPU time and energy"),
        timeseries("GPU time by tenant", "GPU busy seconds per second attributed to each tenant (1 = one GPU "
                   "fully busy for it), summed over the selected instances and models.", "none",
                   Target(f"sum by (tenant) ({rate(SECONDS, TENANT)})", "{{tenant}}"), width=12, stack=True),
        timeseries("Power by tenant", "GPU energy per second attributed to each tenant, in watts, and the "
                   "energy no request took (idle, other processes and GPUs) beside it.", "watt",
                   Target(f"sum by (tenant) ({rate(JOULES, TENANT)})", "{{tenant}}"),
                   Target(unattributed, "unattributed"), width=12, stack=True),
        timeseries("Energy per output token by model", "GPU joules attributed to a model's requests / the "
                   "output tokens they produced, over time: prompt work is in the joules too (--prefill-weight).",
                   "none", Target(per_token, "{{model}}"), width=12),
        timeseries("Attributed share of GPU energy", "Attributed / (attributed + unattributed) GPU energy: how "
                   "much of what the GPUs drew the requests account for.", "percentunit",
                   Target(f"{attributed} / ({attributed} + {unattributed})", "attributed"), width=12, max_value=1),
    ]


def goodput() -> list[Panel | Row]:
    met = f"sum by (tenant) ({rate(SLO, TENANT, MET)})"
    finished = f"sum by (tenant) ({rate(SLO, TENANT)})"
    return [
        Row("Tenant goodput (with SLOs set)"),
        timeseries("Goodput by tenant", "Requests per second per tenant that met every SLO set (--slo-ttft, "
                   "--slo-tpot, --slo-request-duration).", "reqps", Target(met, "{{tenant}}"), width=12, stack=True),
        timeseries("SLO met ratio by tenant", "Share of each tenant's finished requests that met every SLO set.",
                   "percentunit", Target(f"({met} or 0 * {finished}) / {finished}", "{{tenant}}"), width=12,
                   max_value=1),
    ]


def build() -> Dashboard:
    tenant = query_variable("tenant", "Tenant", 'label_values(infermeter_tenant_requests_total{job=~"$job",'
                            'instance=~"$instance",model=~"$model"}, tenant)')
    return dashboard("infermeter-usage", "infermeter / Usage",
                     "For whom, and at what cost: top tenants by tokens, GPU hours, energy and cost over the range, "
                     "GPU time and energy per tenant over time, joules per output token per model, and tenant "
                     "goodput where SLOs are set (docs/attribution.md).",
                     [*top(), *over_time(), *goodput()], [*request_variables(), tenant])
