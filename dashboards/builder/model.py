"""Grafana dashboards (classic model) built from small typed helpers on Grafana's own schema.

Every object is a model class of grafana-foundation-sdk, which Grafana generates from the
schema it validates dashboards against: a misspelt field or an option a panel does not
have is a mypy error, and a TypeError when the builder runs.

Two habits come from mypy checking the project as Python 3.10 while the SDK is written
for 3.11. The helpers construct the models with keyword arguments rather than through
the SDK's fluent builders, which return ``typing.Self`` (Any to mypy at 3.10), so a chain
would lose its checking after the first call. And the SDK's string enums derive from
``enum.StrEnum`` (3.11), whose members mypy at 3.10 types as plain ``str``: they are
written as calls, ``common.LegendDisplayMode("table")``, which mypy accepts and which
raise ValueError for a value the schema does not have, on every build (so in the tests
and in ``--check``).

Panels are laid out by a flow layout, so ids and grid positions can never collide, and
every panel gets the same datasource reference, a unit and a description by construction.
"""

from __future__ import annotations

import json
import warnings
from dataclasses import dataclass

# The SDK marks its classic (v1) Dashboard model deprecated in favour of schema v2, with a
# DeprecationWarning raised while the module is imported. Grafana 12.2 provisions and
# stores the classic model from files, so that is the one we write; the warning would
# only fail test runs that make warnings errors.
with warnings.catch_warnings():
    warnings.simplefilter("ignore", DeprecationWarning)
    from grafana_foundation_sdk.cog.encoder import JSONEncoder
    from grafana_foundation_sdk.models import common, heatmap as heatmap_model, prometheus
    from grafana_foundation_sdk.models import stat as stat_model, statetimeline, table as table_model
    from grafana_foundation_sdk.models import timeseries as timeseries_model
    from grafana_foundation_sdk.models.dashboard import (
        AnnotationContainer,
        AnnotationQuery,
        Dashboard,
        DashboardCursorSync,
        DashboardDashboardTemplating,
        DashboardDashboardTime,
        DashboardLink,
        DashboardLinkType,
        DataTransformerConfig,
        FieldColor,
        FieldColorModeId,
        FieldConfig,
        FieldConfigSource,
        GridPos,
        Panel,
        RowPanel,
        Threshold,
        ThresholdsConfig,
        ThresholdsMode,
        ValueMap,
        ValueMapping,
        ValueMappingResult,
        VariableHide,
        VariableModel,
        VariableOption,
        VariableRefresh,
        VariableSort,
        VariableType,
    )

__all__ = ["Dashboard", "Panel", "Row", "Target", "ValueMapping", "VariableModel"]

# Grafana 12.2 and later write dashboards at schema 42, the last classic (v1) schema; the
# SDK's Dashboard model defaults to it (grafana-foundation-sdk 0.0.21).
SCHEMA_VERSION = 42
DATASOURCE = common.DataSourceRef(type_val="prometheus", uid="${datasource}")
GRID_WIDTH = 24

Steps = list[tuple[str, float | None]]


@dataclass(frozen=True)
class Target:
    expr: str
    legend: str = ""
    instant: bool = False
    fmt: prometheus.PromQueryFormat = prometheus.PromQueryFormat("time_series")
    # Ask Prometheus for this query's exemplars (trace or request ids; DESIGN.md section 12).
    exemplar: bool = False


@dataclass(frozen=True)
class Row:
    title: str


class Layout:
    """Places panels left to right, wrapping at the grid width, each row below the last.

    The SDK's Dashboard builder has a flow layout too, but it wraps only after a panel has
    overflowed the grid; this one wraps before a panel that would not fit.
    """

    def __init__(self) -> None:
        self.x = 0
        self.y = 0
        self.line_height = 0
        self.next_id = 1
        self.panels: list[Panel | RowPanel] = []

    def _new_line(self) -> None:
        self.y += self.line_height
        self.x = 0
        self.line_height = 0

    def add(self, item: Panel | Row) -> None:
        if isinstance(item, Row):
            if self.x:
                self._new_line()
            grid = GridPos(h=1, w=GRID_WIDTH, x=0, y=self.y)
            self.panels.append(RowPanel(collapsed=False, title=item.title, grid_pos=grid, id_val=self._id(), panels=[]))
            self.y += 1
            return
        # The panel helpers always set the size; x, y and the id are the layout's.
        size = item.grid_pos or GridPos()
        if self.x + size.w > GRID_WIDTH:
            self._new_line()
        item.id_val = self._id()
        item.grid_pos = GridPos(h=size.h, w=size.w, x=self.x, y=self.y)
        self.panels.append(item)
        self.x += size.w
        self.line_height = max(self.line_height, size.h)

    def _id(self) -> int:
        value = self.next_id
        self.next_id += 1
        return value


def _query(target: Target, ref: str) -> prometheus.Dataquery:
    return prometheus.Dataquery(
        ref_id=ref,
        datasource=DATASOURCE,
        editor_mode=prometheus.QueryEditorMode("code"),
        expr=target.expr,
        legend_format=target.legend or "__auto",
        range_val=not target.instant,
        instant=target.instant,
        format_val=target.fmt,
        exemplar=True if target.exemplar else None,
    )


def _thresholds(steps: Steps) -> ThresholdsConfig:
    return ThresholdsConfig(mode=ThresholdsMode("absolute"),
                            steps=[Threshold(value=value, color=color) for color, value in steps])


def _panel(kind: str, title: str, description: str, targets: tuple[Target, ...], width: int, height: int,
           defaults: FieldConfig, options: object, transformations: list[DataTransformerConfig] | None = None) -> Panel:
    return Panel(
        type_val=kind,
        title=title,
        description=description,
        datasource=DATASOURCE,
        grid_pos=GridPos(h=height, w=width),
        field_config=FieldConfigSource(defaults=defaults, overrides=[]),
        options=options,
        targets=[_query(t, chr(ord("A") + i)) for i, t in enumerate(targets)],
        transformations=transformations,
    )


def timeseries(title: str, description: str, unit: str, *targets: Target, width: int = 12, height: int = 8,
               stack: bool = False, max_value: float | None = None) -> Panel:
    custom = common.GraphFieldConfig(
        draw_style=common.GraphDrawStyle("line"), line_width=1, fill_opacity=20 if stack else 10,
        show_points=common.VisibilityMode("never"), span_nulls=False, axis_soft_min=0,
        stacking=common.StackingConfig(mode=common.StackingMode("normal" if stack else "none"),
                                       group="A"),
    )
    defaults = FieldConfig(unit=unit, color=FieldColor(mode=FieldColorModeId("palette-classic")), max_val=max_value,
                           custom=custom)
    options = timeseries_model.Options(
        legend=common.VizLegendOptions(show_legend=True, display_mode=common.LegendDisplayMode("table"),
                                       placement=common.LegendPlacement("bottom"), calcs=["mean", "max", "lastNotNull"]),
        tooltip=common.VizTooltipOptions(mode=common.TooltipDisplayMode("multi"), sort=common.SortOrder("desc")),
    )
    return _panel("timeseries", title, description, targets, width, height, defaults, options)


def stat(title: str, description: str, unit: str, *targets: Target, width: int = 4, height: int = 4,
         thresholds: Steps | None = None, mappings: list[ValueMapping] | None = None,
         graph: bool = True, decimals: int | None = None) -> Panel:
    defaults = FieldConfig(unit=unit, color=FieldColor(mode=FieldColorModeId("thresholds")), decimals=decimals,
                           thresholds=_thresholds(thresholds or [("green", None)]), mappings=mappings)
    options = stat_model.Options(
        reduce_options=common.ReduceDataOptions(calcs=["lastNotNull"], fields="", values=False),
        color_mode=common.BigValueColorMode("value"),
        graph_mode=common.BigValueGraphMode("area" if graph else "none"),
        justify_mode=common.BigValueJustifyMode("auto"), orientation=common.VizOrientation("auto"),
        text_mode=common.BigValueTextMode("auto"), wide_layout=True, show_percent_change=False,
    )
    return _panel("stat", title, description, targets, width, height, defaults, options)


def heatmap(title: str, description: str, unit: str, target: Target, width: int = 12, height: int = 8) -> Panel:
    options = heatmap_model.Options(
        calculate=False,
        cell_gap=1,
        color=heatmap_model.HeatmapColorOptions(
            mode=heatmap_model.HeatmapColorMode("scheme"), scheme="Oranges",
            scale=heatmap_model.HeatmapColorScale("exponential"), exponent=0.5, steps=64, fill="dark-orange",
            reverse=False),
        y_axis=heatmap_model.YAxisConfig(axis_placement=common.AxisPlacement("left"), unit=unit),
        rows_frame=heatmap_model.RowsHeatmapOptions(layout=common.HeatmapCellLayout("auto")),
        tooltip=heatmap_model.HeatmapTooltip(mode=common.TooltipDisplayMode("single"), y_histogram=False,
                                             show_color_scale=False),
        legend=heatmap_model.HeatmapLegend(show=True),
        filter_values=heatmap_model.FilterValueRange(le=1e-9),
        exemplars=heatmap_model.ExemplarConfig(color="rgba(255,0,255,0.7)"),
    )
    defaults = FieldConfig(unit=unit, color=FieldColor(mode=FieldColorModeId("palette-classic")))
    bucket_target = Target(target.expr, "{{le}}", fmt=prometheus.PromQueryFormat("heatmap"))
    return _panel("heatmap", title, description, (bucket_target,), width, height, defaults, options)


def state_timeline(title: str, description: str, *targets: Target, mappings: list[ValueMapping], width: int = 24,
                   height: int = 6) -> Panel:
    defaults = FieldConfig(unit="none", color=FieldColor(mode=FieldColorModeId("thresholds")), mappings=mappings,
                           thresholds=_thresholds([("red", None), ("green", 1)]))
    options = statetimeline.Options(
        show_value=common.VisibilityMode("never"), merge_values=True, row_height=0.8,
        align_value=common.TimelineValueAlignment("left"),
        legend=common.VizLegendOptions(show_legend=True, display_mode=common.LegendDisplayMode("list"),
                                       placement=common.LegendPlacement("bottom")),
        tooltip=common.VizTooltipOptions(mode=common.TooltipDisplayMode("single"), sort=common.SortOrder("none")),
    )
    return _panel("state-timeline", title, description, targets, width, height, defaults, options)


def table(title: str, description: str, *targets: Target, hide: tuple[str, ...] = ("Time", "Value"),
          width: int = 12, height: int = 6) -> Panel:
    instant = tuple(Target(t.expr, t.legend, instant=True, fmt=prometheus.PromQueryFormat("table")) for t in targets)
    options = table_model.Options(show_header=True, cell_height=common.TableCellHeight("sm"),
                                  footer=common.TableFooterOptions(show=False, reducer=["sum"]))
    # Transformation options are free-form in the schema: each transformer defines its own.
    organize = DataTransformerConfig(id_val="organize", options={"excludeByName": {name: True for name in hide}})
    defaults = FieldConfig(unit="none", color=FieldColor(mode=FieldColorModeId("palette-classic")))
    return _panel("table", title, description, instant, width, height, defaults, options, [organize])


def value_mapping(texts: dict[int, tuple[str, str]]) -> list[ValueMapping]:
    """One value mapping from numbers to (text, color), in the order given."""
    return [ValueMap(options={str(value): ValueMappingResult(text=text, color=color, index=index)
                              for index, (value, (text, color)) in enumerate(texts.items())})]


UP_DOWN = value_mapping({0: ("down", "red"), 1: ("up", "green")})


class QueryVariable(VariableModel):
    """A query variable that also carries ``definition``: the query text Grafana's editor
    shows and writes itself. The schema has no such field (the SDK follows the schema), but
    readers of the JSON, tests/stack/exprs.py among them, find the query there."""

    definition: str = ""

    def to_json(self) -> dict[str, object]:
        return {**super().to_json(), "definition": self.definition}


def query_variable(name: str, label: str, query: str, multi: bool = True) -> VariableModel:
    variable = QueryVariable(
        type_val=VariableType("query"), name=name, label=label, datasource=DATASOURCE,
        # A plain label_values() string is the form every Grafana version parses.
        query=query,
        refresh=VariableRefresh.ON_TIME_RANGE_CHANGED, sort=VariableSort.ALPHABETICAL_ASC, regex="",
        hide=VariableHide.DONT_HIDE, multi=multi, include_all=True, all_value=".*",
        current=VariableOption(selected=True, text=["All"], value=["$__all"]), options=[],
    )
    variable.definition = query
    return variable


def textbox_variable(name: str, label: str, default: str, description: str) -> VariableModel:
    current = VariableOption(selected=True, text=default, value=default)
    return VariableModel(type_val=VariableType("textbox"), name=name, label=label, query=default,
                         description=description, hide=VariableHide.DONT_HIDE, current=current, options=[current])


def datasource_variable() -> VariableModel:
    return VariableModel(type_val=VariableType("datasource"), name="datasource", label="Data source", query="prometheus",
                         regex="", hide=VariableHide.DONT_HIDE, refresh=VariableRefresh.ON_DASHBOARD_LOAD,
                         multi=False, include_all=False, options=[])


def dashboard(uid: str, title: str, description: str, items: list[Panel | Row], variables: list[VariableModel]) -> Dashboard:
    layout = Layout()
    for item in items:
        layout.add(item)
    annotation = AnnotationQuery(
        built_in=1, datasource=common.DataSourceRef(type_val="grafana", uid="-- Grafana --"), enable=True, hide=True,
        icon_color="rgba(0, 211, 255, 1)", name="Annotations & Alerts", type_val="dashboard",
    )
    link = DashboardLink(title="infermeter", type_val=DashboardLinkType("dashboards"), tags=["infermeter"],
                         as_dropdown=False, include_vars=True, keep_time=True, icon="external link",
                         target_blank=False, tooltip="", url="")
    # The SDK sets placement to "inControlsMenu", the schema's only value, on every link and
    # annotation, though the field is optional and absent means "above the panels" (fixed
    # upstream: grafana-foundation-sdk issue 1272). Keep both where they were.
    link.placement = None  # type: ignore[assignment]
    annotation.placement = None  # type: ignore[assignment]
    return Dashboard(
        uid=uid,
        title=title,
        description=description,
        tags=["infermeter", "llm"],
        timezone="browser",
        editable=True,
        graph_tooltip=DashboardCursorSync.CROSSHAIR,
        fiscal_year_start_month=0,
        live_now=False,
        week_start="",
        refresh="30s",
        time=DashboardDashboardTime(from_val="now-1h", to="now"),
        schema_version=SCHEMA_VERSION,
        version=1,
        annotations=AnnotationContainer(list_val=[annotation]),
        links=[link],
        templating=DashboardDashboardTemplating(list_val=[datasource_variable(), *variables]),
        panels=layout.panels,
    )


def render(board: Dashboard) -> str:
    """The dashboard as the JSON file Grafana provisions: the SDK's encoder, two-space indent."""
    return json.dumps(board, cls=JSONEncoder, indent=2, ensure_ascii=False) + "\n"


def scope_variables() -> list[VariableModel]:
    """job and instance: every dashboard narrows by them, from the series every proxy exports."""
    return [
        query_variable("job", "Job", "label_values(infermeter_build_info, job)"),
        query_variable("instance", "Instance", 'label_values(infermeter_build_info{job=~"$job"}, instance)'),
    ]


def request_variables() -> list[VariableModel]:
    """job, instance, then the endpoint and model the requests carry."""
    return [
        *scope_variables(),
        query_variable("endpoint", "Endpoint",
                       'label_values(infermeter_requests_total{job=~"$job",instance=~"$instance"}, endpoint)'),
        query_variable("model", "Model", 'label_values(infermeter_requests_total{job=~"$job",instance=~"$instance",'
                       'endpoint=~"$endpoint"}, model)'),
    ]
