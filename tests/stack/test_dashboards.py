"""Structure of the Grafana dashboards: layout, datasource, units, descriptions, queries."""

from __future__ import annotations

import itertools
import re
from typing import Any

import pytest

from dashboards.builder import BUILDERS, OUTPUT_DIR
from dashboards.builder.__main__ import render
from tests.stack import contract, exprs

DASHBOARDS = exprs.dashboards()
DATASOURCE = {"type": "prometheus", "uid": "${datasource}"}
# The earliest classic schema of Grafana 11; SCHEMA_VERSION in the builder is newer.
OLDEST_CURRENT_SCHEMA = 39


def test_five_dashboards_are_committed() -> None:
    assert set(DASHBOARDS) == {"infermeter-serving", "infermeter-resources", "infermeter-availability", "infermeter-engine",
                               "infermeter-usage"}


@pytest.mark.parametrize("name", sorted(BUILDERS))
def test_committed_json_is_what_the_builder_makes(name: str) -> None:
    committed = (OUTPUT_DIR / name).read_text(encoding="utf-8")
    assert committed == render(BUILDERS[name]()), f"{name} is stale: run python -m dashboards.builder"


@pytest.fixture(params=sorted(DASHBOARDS))
def dashboard(request: pytest.FixtureRequest) -> dict[str, Any]:
    return DASHBOARDS[request.param]


def test_dashboard_header(dashboard: dict[str, Any]) -> None:
    assert dashboard["uid"] and dashboard["title"].startswith("infermeter / ")
    assert dashboard["schemaVersion"] >= OLDEST_CURRENT_SCHEMA
    assert "id" not in dashboard, "an exported id ties the file to one Grafana instance"
    assert len(dashboard["description"]) > 40


def test_variables(dashboard: dict[str, Any]) -> None:
    variables = {v["name"]: v for v in dashboard["templating"]["list"]}
    source = variables["datasource"]
    assert (source["type"], source["query"]) == ("datasource", "prometheus")
    wanted = {"job", "instance"}
    if dashboard["uid"] != "infermeter-resources":
        wanted |= {"endpoint", "model"}
    assert wanted <= set(variables)
    for name in wanted:
        variable = variables[name]
        assert variable["type"] == "query" and variable["datasource"] == DATASOURCE
        assert variable["includeAll"] and variable["allValue"] == ".*", name


def test_panel_ids_are_unique(dashboard: dict[str, Any]) -> None:
    ids = [p["id"] for p in exprs.panels(dashboard)]
    assert len(ids) == len(set(ids))


def test_panels_fit_the_grid_and_do_not_overlap(dashboard: dict[str, Any]) -> None:
    boxes = [(p["title"], p["gridPos"]) for p in exprs.panels(dashboard)]
    for title, g in boxes:
        assert g["x"] >= 0 and g["w"] > 0 and g["x"] + g["w"] <= 24 and g["h"] > 0, title
    for (a, ga), (b, gb) in itertools.combinations(boxes, 2):
        apart = (ga["x"] + ga["w"] <= gb["x"] or gb["x"] + gb["w"] <= ga["x"]
                 or ga["y"] + ga["h"] <= gb["y"] or gb["y"] + gb["h"] <= ga["y"])
        assert apart, f"{a!r} overlaps {b!r}"


def test_every_panel_has_datasource_unit_description_and_queries(dashboard: dict[str, Any]) -> None:
    for panel in exprs.visual_panels(dashboard):
        title = panel["title"]
        assert panel["datasource"] == DATASOURCE, title
        assert panel["fieldConfig"]["defaults"].get("unit"), f"{title}: no unit"
        assert len(panel.get("description", "")) >= 30, f"{title}: no description of how it is computed"
        assert panel["targets"], f"{title}: no query"
        for target in panel["targets"]:
            assert target["datasource"] == DATASOURCE and target["expr"].strip(), title


QUERIES = exprs.panel_queries()
SERIES = contract.sample_names()
RECORDED = exprs.recorded_names()


@pytest.mark.parametrize("query", QUERIES, ids=[q.name for q in QUERIES])
def test_query_uses_only_contract_series(query: exprs.Query) -> None:
    names = exprs.metric_names(query.expr)
    assert names, f"no series found in {query.expr}"
    unknown = names - set(SERIES) - RECORDED
    assert not unknown, f"not in DESIGN.md section 6 nor a recording rule: {sorted(unknown)}"


@pytest.mark.parametrize("query", QUERIES, ids=[q.name for q in QUERIES])
def test_query_filters_by_every_variable_its_series_carry(query: exprs.Query) -> None:
    """Each selector filters by job and by every variable whose label all the query's
    series carry. A ratio of a series with a label to one without (estimated counts per
    endpoint over requests) must leave that label unfiltered on both sides to stay true."""
    variables = {v["name"] for v in DASHBOARDS[query.dashboard]["templating"]["list"]}
    found = exprs.selectors(query.expr)
    raw = [name for name, _ in found if name not in RECORDED]
    shared = frozenset.intersection(*(contract.labels_of(n) for n in raw)) | {"instance"} if raw else frozenset()
    wanted = [label for label in ("instance", "endpoint", "model", "gpu") if label in shared and label in variables]
    for name, matchers in found:
        if name.startswith("engine:"):
            # The engine's own series come from the engine's scrape job (engines.yml).
            assert 'job=~"$engine_job"' in matchers and 'engine=~"$engine"' in matchers, name
            continue
        assert 'job=~"$job"' in matchers, f"{name} not filtered by job"
        if name in RECORDED:
            continue  # recorded per job: the instance and finer labels are summed away
        for label in wanted:
            assert f'{label}=~"${label}"' in matchers, f"{name} not filtered by {label}"


@pytest.mark.parametrize("query", QUERIES, ids=[q.name for q in QUERIES])
def test_query_aggregates_across_instances(query: exprs.Query) -> None:
    expr = query.expr
    for match in re.finditer(r"histogram_quantile\(([\d.]+), ", expr):
        after = expr[match.end():]
        assert re.match(r"sum by \([^)]*\ble\b[^)]*\) \(rate\(\w+_bucket\{", after), \
            f"histogram_quantile must take sum by (le) of bucket rates: {expr}"
    for window in re.findall(r"\[([^\]]+)\]", expr):
        assert window in ("$__rate_interval", "$__range"), f"fixed window [{window}] ignores the scrape interval"
