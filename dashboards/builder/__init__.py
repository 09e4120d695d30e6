"""Builds the Grafana dashboards in dashboards/grafana/dashboards/ from Python.

``python -m dashboards.builder`` rewrites the JSON files; ``--check`` only compares them
and exits 1 when a committed file differs from what the builder makes.
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

from dashboards.builder import availability, engine, resources, serving, usage
from dashboards.builder.model import Dashboard

OUTPUT_DIR = Path(__file__).resolve().parent.parent / "grafana" / "dashboards"

BUILDERS: dict[str, Callable[[], Dashboard]] = {
    "infermeter-serving.json": serving.build,
    "infermeter-resources.json": resources.build,
    "infermeter-availability.json": availability.build,
    "infermeter-engine.json": engine.build,
    "infermeter-usage.json": usage.build,
}
