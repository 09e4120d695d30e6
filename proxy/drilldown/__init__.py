"""Drill-down (DESIGN.md section 12): request ids, one span per request, a JSON line per request.

``Drilldown`` is what the relay calls; the OpenTelemetry SDK is imported only when tracing
is on (``tracing.py``, built by ``factory.py``), so a sidecar without it pays nothing for it.
"""
