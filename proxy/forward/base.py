"""The narrow interface between the relay and an upstream HTTP client.

Two implementations exist: ``proxy.forward.native.NativeTransport`` (asyncio +
httptools, the default; DESIGN.md section 11) and ``proxy.forward.httpx_transport.HttpxTransport``
(the fallback). Both raise only ``proxy.forward.errors`` exceptions.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from typing import Protocol

RawHeaders = list[tuple[bytes, bytes]]


class UpstreamResponse(Protocol):
    status: int
    # As received, in order, names in the upstream's case; hop-by-hop headers included
    # (the relay strips them).
    headers: RawHeaders

    def aiter_raw(self) -> AsyncIterator[bytes]:
        """Yield body bytes as they arrive, de-chunked, never held back to fill a size."""

    async def aclose(self) -> None:
        """Release the connection: back to the pool only if the body was read to its end."""


class Transport(Protocol):
    async def request(self, method: str, target: str, headers: RawHeaders, body: bytes) -> UpstreamResponse:
        """Send one request; return once the response headers arrived.

        ``target`` is the origin-form path and query (``/v1/chat/completions?x=1``); the
        transport prefixes the upstream's base path, and sets ``Host`` and
        ``Content-Length`` itself: ``headers`` carries neither, nor any hop-by-hop header.
        """

    async def aclose(self) -> None:
        """Close every pooled connection."""
