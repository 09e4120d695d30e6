"""Closed label sets: every value a dashboard or rule matches on is one the proxy can emit.

Each set lives in one product module (endpoints, outcomes, finish reasons, phases); a
panel filtering on ``outcome="canceled"`` would silently show nothing, so the matchers
are held to those sets here.
"""

from __future__ import annotations

import re

import pytest

from proxy.stream.base import FINISH_REASONS, PHASES
from proxy.stream.endpoints import ENDPOINTS
from proxy.timing import OUTCOMES
from tests.stack.exprs import panel_queries, rules, selectors

CLOSED: dict[str, frozenset[str]] = {
    "endpoint": frozenset(ENDPOINTS),
    "outcome": frozenset(OUTCOMES),
    "reason": frozenset(FINISH_REASONS),
    "phase": frozenset(PHASES),
    "stream": frozenset({"true", "false"}),
    "type": frozenset({"input", "output"}),
}
_MATCHER = re.compile(r'(\w+)\s*(=~|!~|!=|=)\s*"((?:[^"\\]|\\.)*)"')


def _expressions() -> list[tuple[str, str]]:
    found = [(q.name, q.expr) for q in panel_queries()]
    found += [(f"{r['file']} / {r.get('record') or r.get('alert')}", str(r["expr"])) for r in rules()]
    return found


def _matched_values(expr: str) -> list[tuple[str, str, str]]:
    out = []
    for name, matchers in selectors(expr):
        if not name.startswith("infermeter_") and not name.startswith("infermeter:"):
            continue
        for label, op, value in _MATCHER.findall(matchers):
            if label in CLOSED and "$" not in value:
                out.append((label, op, value))
    return out


def test_the_sets_are_the_ones_the_design_names() -> None:
    assert "other" in CLOSED["endpoint"] and "chat_completions" in CLOSED["endpoint"]
    assert CLOSED["outcome"] == {"completed", "cancelled", "upstream_error", "rejected"}
    assert CLOSED["reason"] == {"stop", "length", "tool_calls", "content_filter", "error", "other"}
    assert CLOSED["phase"] == {"queue", "load", "prefill", "decode"}


@pytest.mark.parametrize(("where", "expr"), _expressions())
def test_every_matched_label_value_is_one_the_proxy_emits(where: str, expr: str) -> None:
    for label, op, value in _matched_values(expr):
        if op in ("=", "!="):
            assert value in CLOSED[label], f"{where}: {label}{op}\"{value}\" is not one of {sorted(CLOSED[label])}"
        else:
            # Each alternative of a regex matcher must be able to match some value.
            for alternative in value.split("|"):
                pattern = re.compile(alternative)
                assert any(pattern.fullmatch(v) for v in CLOSED[label]), \
                    f"{where}: {label}{op}\"{value}\": {alternative!r} matches no {label}"


def test_the_check_sees_the_matchers_it_guards() -> None:
    seen = {label for _, expr in _expressions() for label, _, _ in _matched_values(expr)}
    assert {"outcome", "phase", "type"} <= seen
