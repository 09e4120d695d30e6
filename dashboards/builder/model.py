"""Grafana dashboard JSON (classic model) built from small typed helpers.

Panels are laid out by a flow layout, so ids and grid positions can never collide, and
every panel gets the same datasource reference, a unit and a description by construction.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

Json = dict[str, Any]

# Grafana 12.2 and later write dashboards at schema 42, the last classic (v1) schema.
SCHEMA_VERSION = 42
DATASOURCE: Json = {"type": "prometheus", "uid": "${datasource}"}
GRID_WIDTH = 24


@dataclass(frozen=True)
class Target:
    expr: str
    legend: str = ""
    instant: bool = False
    fmt: str = "time_series"
    # Ask Prometheus for this query's exemplars (trace or request ids; DESIGN.md section 12).
    exemplar: bool = False


@dataclass(frozen=True)
class Panel:
    """A visualization; ``extra`` carries options specific to its type."""

    kind: str
    title: str
    description: str
    unit: str
    targets: tuple[Target, ...]
    width: int = 12
    height: int = 8
    options: Json = field(default_factory=dict)
    defaults: Json = field(default_factory=dict)
    custom: Json = field(default_factory=dict)
    transformations: tuple[Json, ...] = ()


@dataclass(frozen=True)
class Row:
    title: str


class Layout:
    """Places panels left to right, wrapping at the grid width, each row below the last."""

    def __init__(self) -> None:
        self.x = 0
        self.y = 0
        self.line_height = 0
        self.next_id = 1
        self.panels: list[Json] = []

    def _new_line(self) -> None:
        self.y += self.line_height
        self.x = 0
        self.line_height = 0

    def add(self, item: Panel | Row) -> None:
        if isinstance(item, Row):
            if self.x:
                self._new_line()
            self.panels.append({"id": self._id(), "type": "row", "title": item.title, "collapsed": False,
                                "gridPos": {"h": 1, "w": GRID_WIDTH, "x": 0, "y": self.y}, "panels": []})
            self.y += 1
            return
        if self.x + item.width > GRID_WIDTH:
            self._new_line()
        self.panels.append(_panel_json(item, self._id(), {"h": item.height, "w": item.width, "x": self.x, "y": self.y}))
        self.x += item.width
        self.line_height = max(self.line_height, item.height)

    def _id(self) -> int:
        value = self.next_id
        self.next_id += 1
        return value


def _target_json(target: Target, ref: str) -> Json:
    return {
        "refId": ref,
        "datasource": DATASOURCE,
        "editorMode": "code",
        "expr": target.expr,
        "legendFormat": target.legend or "__auto",
        "range": not target.instant,
        "instant": target.instant,
        "format": target.fmt,
        **({"exemplar": True} if target.exemplar else {}),
    }


def _panel_json(panel: Panel, panel_id: int, grid: Json) -> Json:
    defaults: Json = {"unit": panel.unit, "color": {"mode": "palette-classic"}, **panel.defaults}
    if panel.custom:
        defaults["custom"] = panel.custom
    return {
        "id": panel_id,
        "type": panel.kind,
        "title": panel.title,
        "description": panel.description,
        "datasource": DATASOURCE,
        "gridPos": grid,
        "fieldConfig": {"defaults": defaults, "overrides": []},
        "options": panel.options,
        "targets": [_target_json(t, chr(ord("A") + i)) for i, t in enumerate(panel.targets)],
        **({"transformations": list(panel.transformations)} if panel.transformations else {}),
    }


def timeseries(title: str, description: str, unit: str, *targets: Target, width: int = 12, height: int = 8,
               stack: bool = False, max_value: float | None = None) -> Panel:
    custom: Json = {
        "drawStyle": "line", "lineWidth": 1, "fillOpacity": 20 if stack else 10, "showPoints": "never",
        "spanNulls": False, "axisSoftMin": 0,
        "stacking": {"mode": "normal" if stack else "none", "group": "A"},
    }
    defaults: Json = {} if max_value is None else {"max": max_value}
    options: Json = {
        "legend": {"showLegend": True, "displayMode": "table", "placement": "bottom", "calcs": ["mean", "max", "lastNotNull"]},
        "tooltip": {"mode": "multi", "sort": "desc"},
    }
    return Panel("timeseries", title, description, unit, targets, width, height, options, defaults, custom)


def stat(title: str, description: str, unit: str, *targets: Target, width: int = 4, height: int = 4,
         thresholds: list[tuple[str, float | None]] | None = None, mappings: list[Json] | None = None,
         graph: bool = True, decimals: int | None = None) -> Panel:
    steps = [{"color": color, "value": value} for color, value in (thresholds or [("green", None)])]
    defaults: Json = {"thresholds": {"mode": "absolute", "steps": steps}, "color": {"mode": "thresholds"}}
    if mappings:
        defaults["mappings"] = mappings
    if decimals is not None:
        defaults["decimals"] = decimals
    options: Json = {
        "reduceOptions": {"calcs": ["lastNotNull"], "fields": "", "values": False},
        "colorMode": "value", "graphMode": "area" if graph else "none", "justifyMode": "auto",
        "orientation": "auto", "textMode": "auto", "wideLayout": True, "showPercentChange": False,
    }
    return Panel("stat", title, description, unit, targets, width, height, options, defaults)


def heatmap(title: str, description: str, unit: str, target: Target, width: int = 12, height: int = 8) -> Panel:
    options: Json = {
        "calculate": False,
        "cellGap": 1,
        "color": {"mode": "scheme", "scheme": "Oranges", "scale": "exponential", "exponent": 0.5, "steps": 64,
                  "fill": "dark-orange", "reverse": False},
        "yAxis": {"axisPlacement": "left", "unit": unit},
        "rowsFrame": {"layout": "auto"},
        "tooltip": {"mode": "single", "yHistogram": False, "showColorScale": False},
        "legend": {"show": True},
        "filterValues": {"le": 1e-9},
        "exemplars": {"color": "rgba(255,0,255,0.7)"},
    }
    bucket_target = Target(target.expr, "{{le}}", fmt="heatmap")
    return Panel("heatmap", title, description, unit, (bucket_target,), width, height, options)


def state_timeline(title: str, description: str, *targets: Target, mappings: list[Json], width: int = 24,
                   height: int = 6) -> Panel:
    defaults: Json = {"mappings": mappings, "color": {"mode": "thresholds"},
                      "thresholds": {"mode": "absolute", "steps": [{"color": "red", "value": None}, {"color": "green", "value": 1}]}}
    options: Json = {"showValue": "never", "mergeValues": True, "rowHeight": 0.8, "alignValue": "left",
                     "legend": {"showLegend": True, "displayMode": "list", "placement": "bottom"},
                     "tooltip": {"mode": "single", "sort": "none"}}
    return Panel("state-timeline", title, description, "none", targets, width, height, options, defaults)


def table(title: str, description: str, *targets: Target, hide: tuple[str, ...] = ("Time", "Value"),
          width: int = 12, height: int = 6) -> Panel:
    instant = tuple(Target(t.expr, t.legend, instant=True, fmt="table") for t in targets)
    options: Json = {"showHeader": True, "cellHeight": "sm", "footer": {"show": False, "reducer": ["sum"], "fields": ""}}
    organize: Json = {"id": "organize", "options": {"excludeByName": {name: True for name in hide}}}
    return Panel("table", title, description, "none", instant, width, height, options, transformations=(organize,))


UP_DOWN: list[Json] = [{"type": "value", "options": {
    "0": {"text": "down", "color": "red", "index": 0},
    "1": {"text": "up", "color": "green", "index": 1},
}}]


def query_variable(name: str, label: str, query: str, multi: bool = True) -> Json:
    return {
        "name": name, "label": label, "type": "query", "datasource": DATASOURCE,
        # A plain label_values() string is the form every Grafana version parses.
        "query": query,
        "definition": query, "refresh": 2, "sort": 1, "regex": "", "hide": 0,
        "multi": multi, "includeAll": True, "allValue": ".*",
        "current": {"selected": True, "text": ["All"], "value": ["$__all"]}, "options": [],
    }


def textbox_variable(name: str, label: str, default: str, description: str) -> Json:
    current = {"selected": True, "text": default, "value": default}
    return {"name": name, "label": label, "type": "textbox", "query": default, "description": description,
            "hide": 0, "current": current, "options": [current]}


def datasource_variable() -> Json:
    return {"name": "datasource", "label": "Data source", "type": "datasource", "query": "prometheus",
            "regex": "", "hide": 0, "refresh": 1, "multi": False, "includeAll": False,
            "current": {}, "options": []}


def dashboard(uid: str, title: str, description: str, items: list[Panel | Row], variables: list[Json]) -> Json:
    layout = Layout()
    for item in items:
        layout.add(item)
    return {
        "uid": uid,
        "title": title,
        "description": description,
        "tags": ["infermeter", "llm"],
        "timezone": "browser",
        "editable": True,
        "graphTooltip": 1,
        "fiscalYearStartMonth": 0,
        "liveNow": False,
        "weekStart": "",
        "refresh": "30s",
        "time": {"from": "now-1h", "to": "now"},
        "timepicker": {},
        "schemaVersion": SCHEMA_VERSION,
        "version": 1,
        "annotations": {"list": [{
            "builtIn": 1, "datasource": {"type": "grafana", "uid": "-- Grafana --"}, "enable": True, "hide": True,
            "iconColor": "rgba(0, 211, 255, 1)", "name": "Annotations & Alerts", "type": "dashboard",
        }]},
        "links": [{"title": "infermeter", "type": "dashboards", "tags": ["infermeter"], "asDropdown": False,
                   "includeVars": True, "keepTime": True, "icon": "external link", "targetBlank": False,
                   "tooltip": "", "url": ""}],
        "templating": {"list": [datasource_variable(), *variables]},
        "panels": layout.panels,
    }


def scope_variables() -> list[Json]:
    """job and instance: every dashboard narrows by them, from the series every proxy exports."""
    return [
        query_variable("job", "Job", "label_values(infermeter_build_info, job)"),
        query_variable("instance", "Instance", 'label_values(infermeter_build_info{job=~"$job"}, instance)'),
    ]


def request_variables() -> list[Json]:
    """job, instance, then the endpoint and model the requests carry."""
    return [
        *scope_variables(),
        query_variable("endpoint", "Endpoint",
                       'label_values(infermeter_requests_total{job=~"$job",instance=~"$instance"}, endpoint)'),
        query_variable("model", "Model", 'label_values(infermeter_requests_total{job=~"$job",instance=~"$instance",'
                       'endpoint=~"$endpoint"}, model)'),
    ]
