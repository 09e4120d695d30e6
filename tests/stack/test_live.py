"""Every dashboard and rule query, run by a real Prometheus against a real proxy.

One stack per module: the simulator, the proxy in front of it, and Prometheus scraping
the proxy every second with the shipped rule files loaded. Mixed traffic runs for a few
scrape intervals; then each query must return finite data, or the test names the panel.
"""

from __future__ import annotations

import os
import time
from collections import Counter
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import httpx
import pytest
from prometheus_client.parser import text_string_to_metric_families

from tests.attribution.load_nvml import SITECUSTOMIZE
from tests.stack import contract, exprs
from tests.stack.prometheus_server import Prometheus, QueryError, run_prometheus
from tests.stack.traffic import drive
from tests.support.servers import ChildProcess, free_port
from tests.support.wait import poll, wait_for

JOB = "infermeter"
TRAFFIC_SECONDS = 4.0
# Successful scrapes of the proxy the traffic must span. A rate needs two samples of a
# series, and every request series is born in the traffic: one first scraped at its end
# shows no rate at all. A loaded machine fails scrapes (/metrics past the 1 s timeout),
# so the traffic goes on, a second at a time, until Prometheus has this many.
MIN_SCRAPES = 5
# Long enough to hold all the traffic when queried right after it; Grafana would use
# 4 x the scrape interval, which a loaded CI machine could miss by a scrape.
RATE_INTERVAL = "15s"
RANGE = "1m"

SERVING = exprs.dashboards()["infermeter-serving"]
SLO_DEFAULTS = {v["name"]: v["query"] for v in SERVING["templating"]["list"] if v["type"] == "textbox"}

# No NVIDIA GPU (or no NVML) where these tests run: GPU series cannot exist, so these
# panels, the gpu variable and the GPU alert may be empty; their queries must still be
# accepted by Prometheus, and they may select GPU series only. With a GPU, they need data.
REPO = Path(__file__).resolve().parents[2]
GPU_REASON = "GPU series exist only where NVML sees an NVIDIA GPU"
ALLOWED_EMPTY_WITHOUT_GPU: dict[str, str] = {
    f"infermeter-resources / {title}": GPU_REASON for title in (
        "GPU utilization", "GPU memory used and total", "Upstream's GPU memory", "GPU memory used share",
        "GPU power", "GPU energy over range", "GPU temperature", "GPU SM clock", "GPU inventory",
        "variable gpu")
} | {"alert InfermeterGPUMemoryNearFull": GPU_REASON} | {
    f"infermeter-usage / {title}": GPU_REASON for title in (
        "Top tenants by GPU hours", "Top tenants by energy", "Top tenants by cost", "GPU time by tenant",
        "Power by tenant", "Energy per output token by model", "Attributed share of GPU energy")
} | {f"record {name}": GPU_REASON for name in (
    "job_tenant_model:infermeter_gpu_time_cost_per_hour:rate5m", "job_tenant_model:infermeter_energy_cost_per_hour:rate5m",
    "job_tenant_model:infermeter_cost_per_hour:rate5m", "job_model:infermeter_energy_per_output_token_joules:ratio_rate5m")}

# Prometheus also scrapes the simulator's own /metrics, as the demo stack does: an engine
# in vLLM's names. The other engines' series (and vLLM's older names) cannot exist here;
# tests/stack/test_engine_rules.py holds those mappings to recorded expositions.
ENGINE_JOB = "engine"
# Phases exist only where the upstream reports them (llama.cpp timings, Ollama durations,
# TGI headers); while the simulator reports none, the panels reading them may be empty.
PHASE_REASON = "the upstream reported no per-request phases"


@dataclass(frozen=True)
class Stack:
    prometheus: Prometheus
    instance: str
    metrics_text: str
    engine_text: str
    statuses: Counter[int]
    # Queries are evaluated at these instants, not at now: the module's tests take ~30 s on
    # a loaded machine, so a rate read at now spans only flat counters after the traffic
    # (Request rate read 0.0), and a scrape that overran its 1 s timeout meanwhile leaves
    # no series at all. settled_at: a query found every answered request scraped.
    # rules_at: every rule group has since run twice, so rules built on rules cover it all.
    settled_at: float
    rules_at: float

    def query(self, expr: str) -> list[float]:
        return self.prometheus.query(expr, at=self.settled_at)

    def finite(self, expr: str) -> list[float]:
        """The finite values at ``settled_at``, or, for rules built on rules, at ``rules_at``."""
        return self.prometheus.finite(expr, at=self.settled_at) or self.prometheus.finite(expr, at=self.rules_at)

    @property
    def has_gpu(self) -> bool:
        return "infermeter_gpu_info{" in self.metrics_text

    @property
    def has_phases(self) -> bool:
        return "infermeter_upstream_phase_seconds_count{" in self.metrics_text

    def absent_engine_series(self) -> set[str]:
        """Series of engines.yml that the simulator, the stack's engine, does not export."""
        return set(contract.engine_sample_names()) - live_series(self.engine_text)

    def substitutions(self) -> dict[str, str]:
        return {"job": JOB, "instance": self.instance, "endpoint": ".*", "model": ".*", "gpu": ".*", "tenant": ".*",
                "engine_job": ENGINE_JOB, "engine": ".*",
                "__rate_interval": RATE_INTERVAL, "__range": RANGE, "__interval": "1s", **SLO_DEFAULTS}


def fake_gpu_env(site: Path, simulator: ChildProcess) -> dict[str, str]:
    """A child's environment with the load-driven fake NVML (tests/attribution/load_nvml.py)
    in pynvml's place: one GPU where the simulator holds memory and draws power while it
    serves, so the GPU panels, rules and attribution have data to prove themselves on."""
    (site / "sitecustomize.py").write_text(SITECUSTOMIZE)
    return {"PYTHONPATH": f"{site}{os.pathsep}{REPO}", "ATTRIBUTION_SIM_URL": simulator.url,
            "ATTRIBUTION_UPSTREAM_PID": str(simulator.pid)}


# Without a GPU (this machine), and with the fake one: an empty GPU query is allowed only
# in the first, and must have data in the second.
@pytest.fixture(scope="module", params=["no-gpu", "fake-gpu"])
def stack(request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Stack]:
    sim_port, proxy_port = free_port(), free_port()
    simulate = ["simulate", "--port", str(sim_port), "--ttft", "0.02", "--tbt", "0.004", "--output-tokens", "12",
                "--jitter", "0.2", "--seed", "7", "--error-rate", "0.1", "--log-level", "warning"]
    serve = ["serve", "--upstream", f"http://127.0.0.1:{sim_port}", "--port", str(proxy_port),
             "--slo-ttft", SLO_DEFAULTS["slo_ttft"], "--slo-tpot", SLO_DEFAULTS["slo_tpot"],
             "--slo-request-duration", SLO_DEFAULTS["slo_duration"], "--max-request-bytes", "65536",
             "--tenant-header", "x-tenant",  # the tenant series (DESIGN.md section 14): tenant "none" without one
             "--gpu-hour-cost", "2.5", "--energy-kwh-cost", "0.15",  # the prices the cost rules read
             # Named, the gpu collector fails where there is no driver (by default it would stay
             # off quietly): the collector alert has a condition to show.
             "--collectors", "system,gpu,upstream,ollama",
             "--sample-interval", "0.5", "--probe-interval", "0.5", "--log-level", "warning"]
    instance = f"127.0.0.1:{proxy_port}"
    workdir = tmp_path_factory.mktemp("prometheus")
    with ChildProcess(simulate, sim_port, ready_path="/health") as sim, \
            ChildProcess(serve, proxy_port, env=fake_gpu_env(tmp_path_factory.mktemp("site"), sim)
                         if request.param == "fake-gpu" else None) as proxy, \
            run_prometheus(workdir, JOB, [instance], exprs.RULE_FILES,
                           more_jobs={ENGINE_JOB: [f"127.0.0.1:{sim_port}"]}) as prometheus:
        statuses = drive_while_scraped(prometheus, proxy.url, instance)
        settled_at = settle(prometheus, instance, sum(statuses.values()))
        rules_at = rules_ran(prometheus, times=2)
        metrics_text = httpx.get(f"{proxy.url}/metrics", timeout=10).text
        engine_text = httpx.get(f"http://127.0.0.1:{sim_port}/metrics", timeout=10).text
        if request.param == "fake-gpu":
            assert "infermeter_gpu_info{" in metrics_text and "infermeter_gpu_attributed_energy_joules_total{" \
                in metrics_text, "the fake GPU was not read"
        yield Stack(prometheus, instance, metrics_text, engine_text, statuses, settled_at, rules_at)


def drive_while_scraped(prometheus: Prometheus, url: str, instance: str, timeout: float = 30.0) -> Counter[int]:
    """The traffic, for ``TRAFFIC_SECONDS`` and then until ``MIN_SCRAPES`` scrapes succeeded
    during it; how many answers had each status."""
    started = time.time()
    statuses = drive(url, TRAFFIC_SECONDS)
    deadline = time.monotonic() + timeout

    def scraped() -> float:
        # Whole seconds since the traffic began: no scrape from before it counts.
        up = f'up{{job="{JOB}",instance="{instance}"}}[{int(time.time() - started)}s]'
        return sum(prometheus.query(f"sum_over_time({up})"))

    while scraped() < MIN_SCRAPES and time.monotonic() < deadline:
        statuses += drive(url, 1.0)
    return statuses


def settle(prometheus: Prometheus, instance: str, answered: int, timeout: float = 15.0) -> float:
    """Waits until Prometheus has scraped every answered request, rather than sleeping a
    fixed time that a loaded machine may outrun. Returns the (unix) instant a query found
    them all at (or the last one tried)."""
    expr = f'sum(infermeter_requests_total{{job="{JOB}",instance="{instance}"}})'

    def held() -> tuple[float, list[float]]:
        at = time.time()
        return at, prometheus.query(expr, at=at)

    settled_at, _ = poll(held, lambda found: found[1] == [answered], timeout, step=0.2)
    return settled_at


def rules_ran(prometheus: Prometheus, times: int, timeout: float = 15.0) -> float:
    """Waits until every rule group has been evaluated ``times`` more times (one that had
    begun before the data was complete does not count; a rule read by a later group
    needs another); the (unix) time after."""
    def stamps() -> dict[str, str]:
        groups = httpx.get(f"{prometheus.url}/api/v1/rules", timeout=10).json()["data"]["groups"]
        return {f"{g['file']}:{g['name']}": g["lastEvaluation"] for g in groups}

    for _ in range(times):
        before = stamps()
        wait_for(lambda: all(stamp != before[group] for group, stamp in stamps().items()),
                 "every rule group evaluated", timeout)
    return time.time()


def live_series(text: str) -> set[str]:
    return {line.split("{", 1)[0].split(" ", 1)[0] for line in text.splitlines() if line and not line.startswith("#")}


def read_through_rules(expr: str) -> set[str]:
    """The exported series ``expr`` reads, through the recording rules it reads."""
    recorded = {r["record"]: r["expr"] for r in exprs.rules() if "record" in r}
    names = exprs.metric_names(expr)
    series = names - set(recorded)
    for name in names & set(recorded):
        series |= read_through_rules(recorded[name])
    return series


def check_returns_data(stack: Stack, name: str, expr: str) -> None:
    query = exprs.substitute(expr, stack.substitutions())
    try:
        values = stack.finite(query)
    except QueryError as error:
        pytest.fail(f"{name}: Prometheus rejects the query: {error}\n{query}")
    if values:
        return
    if name in ALLOWED_EMPTY_WITHOUT_GPU and not stack.has_gpu:
        series = read_through_rules(expr)
        # Empty for want of a GPU: it reads GPU series, and whatever else it reads is live
        # (output tokens beside attributed joules, the prices beside attributed hours).
        gpu = {s for s in series if contract.needs_gpu(s)}
        others = series - gpu - live_series(stack.metrics_text)
        assert gpu and not others, f"{name} is exempt as GPU-only but reads {sorted(others)}"
        return
    series = exprs.metric_names(expr) - exprs.recorded_names()
    if series and series <= stack.absent_engine_series():
        return  # another engine's mapping in engines.yml: no such engine in this stack
    if not stack.has_phases and any(contract.needs_upstream_report(s) for s in series):
        return  # see PHASE_REASON
    if any(contract.needs_judge(s) for s in series):
        return  # no judge (--eval-url) in this stack
    pytest.fail(f"{name}: no data (no series, or only NaN)\n{query}")


def test_traffic_reached_every_outcome(stack: Stack) -> None:
    assert stack.statuses[200] > 50
    assert stack.statuses[500] > 0, "the simulator's error rate gives the error panels something to show"
    assert stack.statuses[499] > 0 and stack.statuses[413] > 0


def test_live_metrics_hold_the_contract(stack: Stack) -> None:
    live = live_series(stack.metrics_text)
    expected = {s for s in contract.sample_names() if s != "up" and (stack.has_gpu or not contract.needs_gpu(s))
                and (stack.has_phases or not contract.needs_upstream_report(s)) and not contract.needs_judge(s)}
    assert not expected - live, f"in the contract, missing from /metrics: {sorted(expected - live)}"


def test_live_metrics_have_the_contracts_types_and_labels(stack: Stack) -> None:
    """Every live sample of a contract family has the family's type and exactly its labels
    (plus ``le`` on buckets): a renamed or added label breaks the dashboards that match it."""
    names = contract.sample_names()
    checked: set[str] = set()
    wrong: list[str] = []
    for family in text_string_to_metric_families(stack.metrics_text):
        for sample in family.samples:
            if sample.name not in names:
                continue  # _created, or a series outside the contract (the test above names the missing)
            kind = contract.FAMILIES[names[sample.name]][0]
            if family.type != kind:
                wrong.append(f"{sample.name}: type {family.type}, contract says {kind}")
            if frozenset(sample.labels) != contract.labels_of(sample.name):
                wrong.append(f"{sample.name}: labels {sorted(sample.labels)}, contract says "
                             f"{sorted(contract.labels_of(sample.name))}")
            checked.add(names[sample.name])
    assert not wrong, "\n".join(sorted(set(wrong)))
    assert len(checked) >= 30, f"only {len(checked)} contract families were live: {sorted(checked)}"


def test_every_referenced_series_is_live(stack: Stack) -> None:
    live = live_series(stack.metrics_text) | live_series(stack.engine_text) | {"up"}
    queries = [q.expr for q in exprs.panel_queries() + exprs.variable_queries()] + [r["expr"] for r in exprs.rules()]
    referenced = set().union(*(exprs.metric_names(q) for q in queries)) - exprs.recorded_names()
    missing = {s for s in referenced - live - stack.absent_engine_series()
               if (stack.has_gpu or not contract.needs_gpu(s)) and (stack.has_phases or not contract.needs_upstream_report(s))
               and not contract.needs_judge(s)}
    assert not missing, f"queried but not exported by a running proxy: {sorted(missing)}"


PANEL_QUERIES = exprs.panel_queries()


@pytest.mark.parametrize("query", PANEL_QUERIES, ids=[q.name for q in PANEL_QUERIES])
def test_panel_query_returns_data(stack: Stack, query: exprs.Query) -> None:
    check_returns_data(stack, f"{query.dashboard} / {query.panel}", query.expr)


VARIABLES = exprs.variable_queries()


@pytest.mark.parametrize("query", VARIABLES, ids=[q.name for q in VARIABLES])
def test_variable_lists_values(stack: Stack, query: exprs.Query) -> None:
    check_returns_data(stack, f"{query.dashboard} / {query.panel}", query.expr)


RULES = exprs.rules()


@pytest.mark.parametrize("rule", RULES, ids=[r.get("alert") or r["record"] for r in RULES])
def test_rule_expression_returns_data(stack: Stack, rule: dict[str, str]) -> None:
    if "record" in rule:
        check_returns_data(stack, f"record {rule['record']}", rule["expr"])
        check_returns_data(stack, f"record {rule['record']}", rule["record"])
    else:
        # As 0/1 for every series: an alert's own condition returns data only while firing.
        check_returns_data(stack, f"alert {rule['alert']}", exprs.comparisons_to_bool(rule["expr"]))


def test_prometheus_evaluates_every_rule_without_error(stack: Stack) -> None:
    loaded = stack.prometheus.rules()
    assert {r["name"] for r in loaded} == {r.get("alert") or r["record"] for r in RULES}
    broken = {r["name"]: r.get("lastError") for r in loaded if r["health"] != "ok"}
    assert not broken, f"{broken}\n{Path(stack.prometheus.log).read_text()[-2000:]}"


def test_alerts_react_to_what_was_provoked_and_nothing_else(stack: Stack) -> None:
    """Their for: is minutes, so alerts stay pending here; pending shows the condition."""
    pending = {r["name"] for r in stack.prometheus.rules() if r.get("type") == "alerting" and r["state"] != "inactive"}
    # The simulator fails 10% of requests: above the 5% error ratio, and those requests
    # miss their SLO, which burns the budget faster than 6x (not necessarily 14.4x).
    assert "InfermeterHighErrorRatio" in pending and "InfermeterSLOBurnRateSlow" in pending
    if not stack.has_gpu:
        assert "InfermeterCollectorFailing" in pending, "the gpu collector, named, fails without NVML"
    # The traffic's JSON-mode stream gets the simulator's words, never JSON: all fail the check.
    assert "InfermeterJSONModeFailing" in pending
    allowed = {"InfermeterHighErrorRatio", "InfermeterSLOBurnRateSlow", "InfermeterSLOBurnRateFast",
               "InfermeterCollectorFailing", "InfermeterJSONModeFailing"}
    assert pending <= allowed, f"on a stack with its proxy, upstream and latency fine: {pending - allowed}"


def panel_value(stack: Stack, title: str) -> float:
    panel = next(p for p in exprs.visual_panels(SERVING) if p["title"] == title)
    values = stack.finite(exprs.substitute(panel["targets"][0]["expr"], stack.substitutions()))
    assert len(values) == 1, f"{title}: {values}"
    return values[0]


def test_headline_panels_show_the_simulated_load(stack: Stack) -> None:
    """Finite is not enough (a rate over a flat counter is 0): the overview must show
    what the simulator did, within what a loaded machine can stretch."""
    assert panel_value(stack, "Request rate") > 1
    assert 0.02 <= panel_value(stack, "TTFT p50") < 0.5  # simulated TTFT is 0.02 s
    # Simulated time between tokens is 0.004 s; the TPOT buckets around it are 1.14x
    # apart (tests/metrics/test_bucket_accuracy.py holds their accuracy to 10 %), so the
    # bounds here only allow for a loaded machine's delays.
    assert 0.0025 <= panel_value(stack, "TPOT p50") < 0.05
    assert panel_value(stack, "Output tokens/s") > 10
    # The simulator answers 10% of requests with HTTP 500.
    assert 0.02 < panel_value(stack, "Error ratio") < 0.3


def test_serving_totals_match_what_the_client_saw(stack: Stack) -> None:
    selector = f'job="{JOB}",instance="{stack.instance}"'
    answered = sum(stack.statuses.values())
    recorded = sum(stack.query(f"sum(infermeter_requests_total{{{selector}}})"))
    assert recorded == answered
    server_errors = sum(stack.query(f'sum(infermeter_requests_total{{{selector},code=~"5.."}})'))
    assert server_errors == stack.statuses[500]
