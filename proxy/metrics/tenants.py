"""The ``tenant`` label (DESIGN.md section 14): its values, its cap, and its counters.

A tenant value is at most 64 characters of ``[A-Za-z0-9._:-]``; anything else is
``invalid``, and a request that names none is ``none``. As with models, only a 2xx
answer may take one of ``--max-tenants`` slots (a client can send any header or key; a
server that answers 2xx has accepted it), later values become ``other``, and
``--workers`` shares the slots (proxy.workers.models). Only counters carry the label:
a histogram's ~100 bucket series per tenant would multiply the series count by the cap.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from proxy.metrics.definitions import TenantMetrics
from proxy.metrics.labels import AdmittedLabels
from proxy.tenants.names import INVALID, NONE, OTHER, RESERVED
from proxy.timing import RequestRecord

__all__ = ["INVALID", "NONE", "OTHER", "TenantCounters", "TenantLabels"]

TOKEN_TYPES = ("input", "output", "cached_input", "reasoning")


class TenantLabels(AdmittedLabels):
    """``--max-tenants``: the label a tenant's series go under."""

    def label_for(self, tenant: str, ok: bool) -> str:
        """``tenant`` itself if it holds a slot (taken by any worker), or takes a free one now
        when ``ok`` (its request got a 2xx answer); else ``other``. ``none``, ``invalid`` and
        ``other`` pass through and never take a slot."""
        if tenant in self._seen or tenant in RESERVED:
            return tenant
        return self.admitted(tenant, ok)


@dataclass(slots=True)
class _Children:
    tokens: tuple[Any, ...]
    requests: dict[str, Any] = field(default_factory=dict)
    slo: dict[bool, Any] = field(default_factory=dict)


class TenantCounters:
    """Writes a finished record's tenant series; label children bound once per (tenant, model)."""

    def __init__(self, metrics: TenantMetrics, labels: TenantLabels) -> None:
        self.m = metrics
        self.labels = labels
        self._children: dict[tuple[str, str], _Children] = {}

    def record(self, rec: RequestRecord, model: str, slo_met: bool | None) -> None:
        """Count ``rec`` under its tenant's label and the ``model`` label its other series
        went under; ``slo_met`` None when no SLO result was counted for it."""
        tenant = rec.tenant_label = self.labels.label_for(rec.tenant, 200 <= rec.code < 300)
        c = self._children.get((tenant, model))
        if c is None:
            c = self._children[(tenant, model)] = _Children(
                tuple(self.m.tokens.labels(tenant, model, t) for t in TOKEN_TYPES))
        requests = c.requests.get(rec.outcome)
        if requests is None:
            requests = c.requests[rec.outcome] = self.m.requests.labels(tenant, model, rec.outcome)
        requests.inc()
        summary = rec.summary
        for child, n in zip(c.tokens, (summary.input_tokens, rec.output_tokens, summary.cached_input_tokens,
                                       summary.reasoning_output_tokens)):
            if n:
                child.inc(n)
        if slo_met is not None and self.m.slo is not None:
            slo = c.slo.get(slo_met)
            if slo is None:
                slo = c.slo[slo_met] = self.m.slo.labels(tenant, model, "met" if slo_met else "missed")
            slo.inc()
