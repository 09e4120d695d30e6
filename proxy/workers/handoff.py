"""A worker's front: it hands ``/readyz`` and ``/metrics`` to the supervisor, the rest to the relay.

With one port shared by every worker, a scrape or a readiness check lands on any of
them; the supervisor alone runs the upstream probe and sees every worker's counters, so
the worker passes those paths (``proxy.admin.handoff_paths``) on, over the supervisor's
private unix socket. ``/healthz`` stays local: it says that this process serves.
"""

from __future__ import annotations

from collections.abc import MutableMapping
from typing import Any

import httpx

from proxy.app import Sidecar
from proxy.forward.relay import Receive, Send

# The supervisor waits for workers at most ~1 s per scrape, then renders.
_TIMEOUT = 15.0
_REQUEST_HEADERS = (b"accept", b"accept-encoding", b"authorization")
_RESPONSE_HEADERS = ("content-type", "content-encoding", "www-authenticate")


class Handoff:
    def __init__(self, sidecar: Sidecar, paths: frozenset[str], supervisor_uds: str) -> None:
        self.sidecar = sidecar
        self.paths = paths
        self.client = httpx.AsyncClient(transport=httpx.AsyncHTTPTransport(uds=supervisor_uds),
                                        base_url="http://infermeter-supervisor", timeout=_TIMEOUT)
        # Only what the client sent: httpx would otherwise ask for gzip on everyone's behalf.
        for name in ("accept", "accept-encoding"):
            del self.client.headers[name]

    async def __call__(self, scope: MutableMapping[str, Any], receive: Receive, send: Send) -> None:
        if scope["type"] == "http" and scope["path"] in self.paths:
            await self._hand_off(scope, send)
        elif scope["type"] == "lifespan":
            try:
                await self.sidecar(scope, receive, send)
            finally:
                await self.client.aclose()
        else:
            await self.sidecar(scope, receive, send)

    async def _hand_off(self, scope: MutableMapping[str, Any], send: Send) -> None:
        headers = [(k.decode("latin-1"), v.decode("latin-1")) for k, v in scope["headers"] if k in _REQUEST_HEADERS]
        query = scope.get("query_string", b"").decode("latin-1")
        url = scope["path"] + ("?" + query if query else "")
        try:
            async with self.client.stream(scope["method"], url, headers=headers) as response:
                body = b"".join([chunk async for chunk in response.aiter_raw()])
                status = response.status_code
                out = [(k.encode(), v.encode()) for k in _RESPONSE_HEADERS if (v := response.headers.get(k)) is not None]
        except httpx.HTTPError:
            status, body = 503, b'{"status":"not ready","supervisor":"unreachable"}'
            out = [(b"content-type", b"application/json")]
        out.append((b"content-length", str(len(body)).encode()))
        await send({"type": "http.response.start", "status": status, "headers": out})
        await send({"type": "http.response.body", "body": body})
