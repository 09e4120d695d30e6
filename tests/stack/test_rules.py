"""Prometheus config and rules: promtool's checks, its rule unit tests, and their coverage."""

from __future__ import annotations

import subprocess
from pathlib import Path

import pytest
import yaml

from tests.stack import contract, exprs
from tests.stack.tools import REPO, require

PROM_DIR = REPO / "dashboards" / "prometheus"
UNIT_TESTS = PROM_DIR / "tests" / "rules_test.yml"
# rules_test.yml holds every alert's cases; engines_test.yml each engine mapping's.
ALL_UNIT_TESTS = sorted((PROM_DIR / "tests").glob("*_test.yml"))
ALERTS = [rule for rule in exprs.rules() if "alert" in rule]
SEVERITIES = {"critical", "warning", "info"}


def promtool(*args: str | Path) -> subprocess.CompletedProcess[str]:
    binary = require("promtool")
    return subprocess.run([str(binary), *map(str, args)], check=False, cwd=PROM_DIR, capture_output=True, text=True, timeout=60)


def test_promtool_check_config() -> None:
    result = promtool("check", "config", "prometheus.yml")
    assert result.returncode == 0, result.stdout + result.stderr


def test_promtool_check_rules() -> None:
    result = promtool("check", "rules", *exprs.RULE_FILES)
    assert result.returncode == 0, result.stdout + result.stderr


@pytest.mark.parametrize("unit_tests", ALL_UNIT_TESTS, ids=[p.name for p in ALL_UNIT_TESTS])
def test_promtool_rule_unit_tests(unit_tests: Path) -> None:
    result = promtool("test", "rules", unit_tests)
    assert result.returncode == 0, result.stdout + result.stderr


def test_config_loads_every_rule_file() -> None:
    config = yaml.safe_load((PROM_DIR / "prometheus.yml").read_text(encoding="utf-8"))
    loaded = {path for pattern in config["rule_files"] for path in PROM_DIR.glob(pattern)}
    assert loaded == set(exprs.RULE_FILES)


def test_expected_alerts_exist() -> None:
    names = {rule["alert"] for rule in ALERTS}
    assert names == {
        "InfermeterProxyDown", "InfermeterUpstreamDown", "InfermeterHighErrorRatio", "InfermeterTTFTHigh",
        "InfermeterTPOTHigh", "InfermeterSLOBurnRateFast", "InfermeterSLOBurnRateSlow",
        "InfermeterGPUMemoryNearFull", "InfermeterCollectorFailing",
        "InfermeterEngineKVCacheNearFull", "InfermeterEngineQueueGrowing", "InfermeterEnginePreemptionStorm",
        "InfermeterJSONModeFailing", "InfermeterRepetitionHigh",
    }


@pytest.mark.parametrize("rule", ALERTS, ids=[rule["alert"] for rule in ALERTS])
def test_alert_has_for_severity_summary_description(rule: dict[str, object]) -> None:
    assert rule.get("for"), "an alert without for: pages on a single bad scrape"
    labels = rule.get("labels")
    assert isinstance(labels, dict) and labels.get("severity") in SEVERITIES
    annotations = rule.get("annotations")
    assert isinstance(annotations, dict)
    assert annotations.get("summary") and len(str(annotations.get("description", ""))) > 60


@pytest.mark.parametrize("rule", ALERTS, ids=[rule["alert"] for rule in ALERTS])
def test_every_alert_has_a_firing_and_a_quiet_unit_test(rule: dict[str, object]) -> None:
    cases = [case for test in yaml.safe_load(UNIT_TESTS.read_text(encoding="utf-8"))["tests"]
             for case in test.get("alert_rule_test", []) if case["alertname"] == rule["alert"]]
    assert any(case.get("exp_alerts") for case in cases), "no unit test where it fires"
    assert any(not case.get("exp_alerts") for case in cases), "no unit test where it stays quiet"


@pytest.mark.parametrize("rule", exprs.rules(), ids=[rule.get("alert") or rule["record"] for rule in exprs.rules()])
def test_rule_uses_only_contract_series(rule: dict[str, str]) -> None:
    known = set(contract.sample_names()) | exprs.recorded_names()
    if rule["file"] == "engines.yml":
        known |= set(contract.engine_sample_names())
    unknown = exprs.metric_names(rule["expr"]) - known
    assert not unknown, f"not in DESIGN.md section 6, a recorded engine exposition nor a recording rule: {sorted(unknown)}"


@pytest.mark.parametrize("unit_tests", ALL_UNIT_TESTS, ids=[p.name for p in ALL_UNIT_TESTS])
def test_unit_tests_load_the_shipped_rule_files(unit_tests: Path) -> None:
    spec = yaml.safe_load(unit_tests.read_text(encoding="utf-8"))
    loaded = {(unit_tests.parent / path).resolve() for path in spec["rule_files"]}
    assert loaded == {path.resolve() for path in exprs.RULE_FILES}


ENGINE_RULES = [rule for rule in exprs.rules() if rule["file"] == "engines.yml"]


@pytest.mark.parametrize("rule", ENGINE_RULES, ids=[f"{r['group']}/{r['record']}" for r in ENGINE_RULES])
def test_engine_rule_is_labelled_and_unit_tested(rule: dict[str, object]) -> None:
    """Every mapping names its engine and has a promtool case that checks its output."""
    labels = rule.get("labels")
    assert isinstance(labels, dict) and rule["group"] == f"engine.{labels.get('engine')}"
    spec = yaml.safe_load((PROM_DIR / "tests" / "engines_test.yml").read_text(encoding="utf-8"))
    checked = {(case["expr"].split("{", 1)[0], label)
               for test in spec["tests"] for case in test.get("promql_expr_test", [])
               for label in [s["labels"] for s in case["exp_samples"]]}
    assert any(name == rule["record"] and f'engine="{labels["engine"]}"' in text for name, text in checked), \
        "no promql_expr_test in engines_test.yml checks this mapping's output"
