"""One relay process's side of attribution: its requests in flight and where a request
goes once its last interval is settled (the attributed counters, then its log line)."""

from __future__ import annotations

from collections.abc import Callable

from prometheus_client import CollectorRegistry

from proxy.attribution.inflight import InFlight
from proxy.attribution.meter import GpuMeter
from proxy.attribution.series import ATTRIBUTED, UNATTRIBUTED, AttributionSeries, CostGauges
from proxy.collectors.gpu import GpuReading
from proxy.config import Settings
from proxy.drilldown.requestlog import RequestLog
from proxy.metrics.labels import UNKNOWN
from proxy.metrics.tenants import NONE
from proxy.timing import RequestRecord


class Attribution:
    def __init__(self, inflight: InFlight, series: AttributionSeries, request_log: RequestLog | None) -> None:
        self.inflight = inflight
        self.series = series
        self._log = request_log

    def begin(self, rec: RequestRecord) -> None:
        # Per request, never per chunk; nothing at all until a GPU has been read.
        if self.inflight.active:
            self.inflight.begin(rec)

    def holds(self, rec: RequestRecord) -> bool:
        """Whether attribution will close the request (and write its log line) after ``end``."""
        return self.inflight.active and self.inflight.holds(rec)

    def end(self, rec: RequestRecord) -> None:
        """The request's record is final (labels, request id): close it after its last interval."""
        if not self.inflight.end(rec, self._closed):
            # Attribution stopped since ``holds`` (shutdown, the supervisor gone): close it now.
            self._closed(rec)

    def _closed(self, rec: RequestRecord) -> None:
        tenant = rec.tenant_label or NONE
        model = rec.model_label or UNKNOWN
        self.series.attribute(tenant, model, rec.gpu_seconds or 0.0, rec.energy_joules or 0.0)
        if self._log is not None:
            self._log.put(rec)

    def close(self) -> None:
        self.inflight.close_all()


def build_attribution(settings: Settings, registry: CollectorRegistry, request_log: RequestLog | None,
                      worker: bool = False) -> Attribution | None:
    """The process's attribution (None with metrics off). A ``worker`` exports only the
    attributed pair: its supervisor reads the GPUs and counts what nobody took."""
    if not settings.observe:
        return None
    series = AttributionSeries((ATTRIBUTED,) if worker else (ATTRIBUTED, UNATTRIBUTED))
    registry.register(series)
    if not worker:
        registry.register(CostGauges(settings.gpu_hour_cost, settings.energy_kwh_cost))
    return Attribution(InFlight(settings.prefill_weight), series, request_log)


def local_meter(attribution: Attribution | None) -> Callable[[list[GpuReading]], None] | None:
    """The GPU collector's sink in a single process: the meter splits among its own requests."""
    if attribution is None:
        return None
    inflight = attribution.inflight
    return GpuMeter(attribution.series, lambda: (inflight,)).observe
