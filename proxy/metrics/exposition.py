"""``/metrics``: renders the registry off the event loop, with content negotiation and gzip.

prometheus-client's own ASGI app renders synchronously on the loop; a slow render there
would stall every stream in flight.
"""

from __future__ import annotations

import asyncio
import gzip
import hmac
from collections.abc import Awaitable, Callable

from prometheus_client import CollectorRegistry
from prometheus_client.exposition import choose_encoder
from starlette.requests import Request
from starlette.responses import Response


def _render(registry: CollectorRegistry, accept: str, accept_encoding: str) -> tuple[bytes, dict[str, str]]:
    encoder, content_type = choose_encoder(accept)
    body = encoder(registry)
    headers = {"Content-Type": content_type}
    if "gzip" in accept_encoding:
        body = gzip.compress(body, compresslevel=1)
        headers["Content-Encoding"] = "gzip"
    return body, headers


def metrics_endpoint(registry: CollectorRegistry, token: str | None,  # type: ignore[no-untyped-def]
                     refresh: Callable[[], Awaitable[None]] | None = None):
    """``refresh`` runs before each authorised render (``--workers``: collect the workers)."""
    expected = token.encode() if token else None

    async def metrics(request: Request) -> Response:
        if expected is not None:
            # RFC 9110 section 11.1: the scheme is case-insensitive; the token is compared in constant time.
            scheme, _, given = request.headers.get("authorization", "").partition(" ")
            if scheme.lower() != "bearer" or not hmac.compare_digest(given.lstrip(" ").encode(), expected):
                return Response("unauthorized\n", status_code=401, headers={"WWW-Authenticate": "Bearer"},
                                media_type="text/plain")
        if refresh is not None:
            await refresh()
        body, headers = await asyncio.to_thread(
            _render, registry, request.headers.get("accept", ""), request.headers.get("accept-encoding", ""))
        return Response(body, headers=headers)

    return metrics
