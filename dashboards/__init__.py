"""Grafana dashboards, Prometheus config and rules; the Python here only builds the dashboards."""
