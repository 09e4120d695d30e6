"""Every PromQL expression the stack ships: dashboard panels, variables and rules."""

from __future__ import annotations

import json
import re
from dataclasses import dataclass
from typing import Any

import yaml

from tests.stack.tools import REPO

Json = dict[str, Any]

DASHBOARD_DIR = REPO / "dashboards" / "grafana" / "dashboards"
RULE_FILES = sorted((REPO / "dashboards" / "prometheus" / "rules").glob("*.yml"))


@dataclass(frozen=True)
class Query:
    dashboard: str
    panel: str
    ref: str
    expr: str

    @property
    def name(self) -> str:
        return f"{self.dashboard} / {self.panel} / {self.ref}"


def dashboards() -> dict[str, Json]:
    return {path.stem: json.loads(path.read_text(encoding="utf-8")) for path in sorted(DASHBOARD_DIR.glob("*.json"))}


def panels(dashboard: Json) -> list[Json]:
    """Every panel, rows included, also those nested in collapsed rows."""
    found: list[Json] = []
    for panel in dashboard["panels"]:
        found.append(panel)
        found.extend(panel.get("panels", []))
    return found


def visual_panels(dashboard: Json) -> list[Json]:
    return [p for p in panels(dashboard) if p["type"] != "row"]


def panel_queries() -> list[Query]:
    return [Query(uid, panel["title"], target["refId"], target["expr"])
            for uid, dashboard in dashboards().items()
            for panel in visual_panels(dashboard)
            for target in panel.get("targets", [])]


LABEL_VALUES = re.compile(r"^label_values\((?P<selector>.+),\s*(?P<label>\w+)\)$")


def variable_queries() -> list[Query]:
    """label_values(selector, label) variables, as the PromQL that lists the same values."""
    found: list[Query] = []
    for uid, dashboard in dashboards().items():
        for variable in dashboard["templating"]["list"]:
            if variable["type"] != "query":
                continue
            match = LABEL_VALUES.match(variable["definition"])
            assert match, f"{uid}: variable {variable['name']} is not a label_values() query"
            expr = f"count by ({match['label']}) ({match['selector']})"
            found.append(Query(uid, f"variable {variable['name']}", "query", expr))
    return found


def rules() -> list[Json]:
    found: list[Json] = []
    for path in RULE_FILES:
        for group in yaml.safe_load(path.read_text(encoding="utf-8"))["groups"]:
            found.extend({**rule, "file": path.name, "group": group["name"]} for rule in group["rules"])
    return found


def recorded_names() -> set[str]:
    return {rule["record"] for rule in rules() if "record" in rule}


# Grafana's built-in and dashboard variables, in all three of its syntaxes; not the
# $1 of a label_replace() replacement.
VARIABLE = re.compile(r"\$\{(\w+)(?::\w+)?\}|\$([A-Za-z_]\w*)|\[\[(\w+)\]\]")


def substitute(expr: str, values: dict[str, str]) -> str:
    def one(match: re.Match[str]) -> str:
        name = next(group for group in match.groups() if group)
        if name not in values:
            raise KeyError(f"no test value for ${name} in {expr}")
        return values[name]

    return VARIABLE.sub(one, expr)


_STRING = re.compile(r'"(?:[^"\\]|\\.)*"')
_NAME = re.compile(r"(?<![\w:.])([a-zA-Z_:][\w:]*)(?=\s*[{\[),]|\s*$|\s+(?:[-+*/^%<>=!]|and\b|or\b|unless\b))")
_KEYWORDS = {"by", "without", "on", "ignoring", "group_left", "group_right", "bool", "and", "or", "unless", "offset"}


def metric_names(expr: str) -> set[str]:
    """Series names an expression selects (identifiers followed by a selector, a range, a
    closing parenthesis, a comma or an operator), excluding functions, keywords and label names."""
    code = _STRING.sub('""', expr)
    code = re.sub(r"\{[^}]*\}", "{}", code)
    code = re.sub(r"\b(?:by|without|on|ignoring|group_left|group_right)\s*\([^)]*\)", "", code)
    return {name for name in _NAME.findall(code) if name not in _KEYWORDS and not name.startswith("__")}


SELECTOR = re.compile(r"(?<![\w:])([a-zA-Z_:][\w:]*)\{([^}]*)\}")


def selectors(expr: str) -> list[tuple[str, str]]:
    """(series name, matchers) for every ``name{...}`` in the expression."""
    return SELECTOR.findall(expr)


_COMPARISON = re.compile(r"==|!=|>=|<=|>|<")


def comparisons_to_bool(expr: str) -> str:
    """The expression with ``bool`` after every comparison outside selectors and strings,
    so an alert condition returns 0 or 1 for every series instead of only firing ones."""
    out: list[str] = []
    i, depth = 0, 0
    while i < len(expr):
        char = expr[i]
        if char == '"':
            end = _STRING.match(expr, i)
            assert end, f"unterminated string in {expr}"
            out.append(end.group())
            i = end.end()
            continue
        if char in "{}":
            depth += 1 if char == "{" else -1
        match = _COMPARISON.match(expr, i) if depth == 0 else None
        if match:
            out.append(match.group() + " bool")
            i = match.end()
            continue
        out.append(char)
        i += 1
    return "".join(out)
