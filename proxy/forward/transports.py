"""Pick the upstream transport the settings ask for (``--upstream-client``)."""

from __future__ import annotations

from proxy.config import Settings
from proxy.forward.base import Transport
from proxy.forward.httpx_transport import HttpxTransport
from proxy.forward.native import NativeTransport


def make_transport(settings: Settings) -> Transport:
    if settings.upstream_client == "httpx":
        return HttpxTransport(settings.upstream_url, settings.connect_timeout, settings.read_timeout, settings.max_connections)
    return NativeTransport(settings.upstream_url, settings.connect_timeout, settings.read_timeout, settings.max_connections)
