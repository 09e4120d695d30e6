"""The selectable fallback transport (``--upstream-client httpx``): one ``httpx.AsyncClient``.

httpx's defaults are wrong for a proxy (STYLE.md, "Known traps"), so every one that
matters is set here: no cookie jar that remembers, no added headers, explicit timeouts
and limits, no redirects, no proxy or certificate settings taken from the environment.
It is several times slower per chunk than ``NativeTransport`` (DESIGN.md section 11).
"""

from __future__ import annotations

import http.cookiejar
import ssl
import urllib.request
from collections.abc import AsyncIterator
from typing import Any

import h11
import httpx

from proxy.config import UpstreamURL
from proxy.forward import policy
from proxy.forward.base import RawHeaders
from proxy.forward.errors import UpstreamConnectError, UpstreamError, UpstreamReadError, UpstreamTimeout

# What httpx and httpcore raise, and what reaches us from the socket beneath them.
_FAILURES = (httpx.TransportError, OSError)


def _bytes_beyond_response(response: httpx.Response) -> bool:
    """Did the upstream send bytes after this complete response, already read off the socket?

    httpcore would keep them in the connection's h11 buffer and hand them to the next
    request on that connection as its response: one user's bytes to another. They are
    only visible in httpcore's internals, through the wrappers around the connection's
    byte stream (httpx's bound and response streams, httpcore's pool and HTTP/1.1
    streams); tests/faults pin this, so a version that moves them fails there, not silently.
    """
    obj: Any = response.stream
    for _ in range(8):
        if obj is None or hasattr(obj, "_h11_state"):
            break
        obj = getattr(obj, "_stream", None) or getattr(obj, "_httpcore_stream", None) or getattr(obj, "_connection", None)
    state = getattr(obj, "_h11_state", None)
    if state is None or state.their_state is not h11.DONE:
        return False
    data, closed = state.trailing_data
    return bool(data) or closed


class _NeverStoreJar(http.cookiejar.CookieJar):
    """A shared client jar would replay one user's Set-Cookie to the next (GHSA-7vwr-g6pm-9hc8)."""

    def set_cookie(self, cookie: http.cookiejar.Cookie) -> None:
        return

    def extract_cookies(self, response: Any, request: urllib.request.Request) -> None:
        return


class _ExchangeProbe:
    """httpcore trace hook: was the connection reused, how far did the request get, and
    did the upstream send more than its response?"""

    __slots__ = ("fresh", "failed", "response")

    def __init__(self) -> None:
        self.fresh = False
        self.failed = ""
        self.response: httpx.Response | None = None

    async def __call__(self, event: str, info: dict[str, Any]) -> None:
        if event == "connection.connect_tcp.started":
            self.fresh = True
        elif event == "http11.receive_response_body.complete":
            # The body is read and the connection not yet released to the pool: the last
            # moment to keep stray bytes from the next request on it.
            if self.response is not None and _bytes_beyond_response(self.response):
                stream = self.response.extensions.get("network_stream")
                if stream is not None:
                    # A closed socket reads as expired when the pool would next hand it out.
                    await stream.aclose()
        elif event.endswith(".failed") and not self.failed:
            self.failed = event

    def closed_unanswered(self, exc: Exception) -> bool:
        """httpcore saw EOF and no response at all on a connection that had served before:
        the server probably closed it idle just as we sent."""
        return (
            not self.fresh
            and self.failed == "http11.receive_response_headers.failed"
            and isinstance(exc, httpx.RemoteProtocolError)
            and str(exc).startswith("Server disconnected without sending a response")
        )


class _SentOnce:
    """A request body that lets go of its bytes once httpx has sent them.

    httpx's streamed response and its stream refer to each other, and the response holds
    its request: a cycle that only the cyclic GC frees, which large bytes do not prompt.
    Given as bytes, every body stayed alive until then (issue 18: +260 MiB after 60
    POSTs of 10 MB; the native transport stays flat)."""

    __slots__ = ("_data",)

    def __init__(self, data: bytes) -> None:
        self._data = data

    def __aiter__(self) -> _SentOnce:
        return self

    async def __anext__(self) -> bytes:
        data, self._data = self._data, b""
        if not data:
            raise StopAsyncIteration
        return data


class _Errors:
    """The one mapping from what httpx raises to the relay's three errors; the settings it
    names are the transport's."""

    __slots__ = ("url", "connect_timeout", "read_timeout", "max_connections")

    def __init__(self, url: str, connect_timeout: float, read_timeout: float, max_connections: int) -> None:
        self.url = url
        self.connect_timeout = connect_timeout
        self.read_timeout = read_timeout
        self.max_connections = max_connections

    def mapped(self, exc: Exception, headers_received: bool) -> UpstreamError:
        url = self.url
        if headers_received:
            if isinstance(exc, httpx.TimeoutException):
                return UpstreamReadError(policy.read_stall(url, self.read_timeout))
            return UpstreamReadError(policy.broke_off(url, exc))
        if isinstance(exc, httpx.ConnectError):
            return UpstreamConnectError(policy.cannot_connect(url, exc))
        if isinstance(exc, httpx.ConnectTimeout):
            return UpstreamTimeout(policy.connect_timeout(url, self.connect_timeout))
        if isinstance(exc, httpx.PoolTimeout):
            return UpstreamTimeout(policy.pool_busy(url, self.max_connections, self.connect_timeout))
        if isinstance(exc, httpx.TimeoutException):
            return UpstreamTimeout(policy.head_timeout(url, self.read_timeout))
        return UpstreamConnectError(policy.failed_before_headers(url, exc))


class _HttpxResponse:
    __slots__ = ("status", "headers", "_response", "_errors")

    def __init__(self, response: httpx.Response, errors: _Errors) -> None:
        self.status = response.status_code
        self.headers: RawHeaders = list(response.headers.raw)
        self._response = response
        self._errors = errors

    async def aiter_raw(self) -> AsyncIterator[bytes]:
        try:
            # No chunk_size: httpx would otherwise hold bytes back until it has that many.
            async for chunk in self._response.aiter_raw():
                yield chunk
        except _FAILURES as exc:
            raise self._errors.mapped(exc, headers_received=True) from exc

    async def aclose(self) -> None:
        try:
            # httpcore keeps the connection only if the body was read to its end.
            await self._response.aclose()
        except _FAILURES:
            pass


class HttpxTransport:
    """``proxy.forward.base.Transport`` on one deliberately configured ``httpx.AsyncClient``."""

    def __init__(
        self,
        upstream: UpstreamURL | str,
        connect_timeout: float,
        read_timeout: float,
        max_connections: int = 1024,
        ssl_context: ssl.SSLContext | None = None,
    ) -> None:
        parsed = UpstreamURL.of(upstream)
        self.url = parsed.url
        self._base = httpx.URL(parsed.url)
        self._prefix = parsed.prefix
        self._errors = _Errors(parsed.url, connect_timeout, read_timeout, max_connections)
        self._client = httpx.AsyncClient(
            # The system trust store, as NativeTransport uses, not certifi's bundle.
            verify=ssl_context if ssl_context is not None else ssl.create_default_context(),
            cookies=_NeverStoreJar(),  # httpx.Cookies(...) would copy it into a plain jar
            timeout=httpx.Timeout(connect=connect_timeout, read=read_timeout, write=read_timeout, pool=connect_timeout),
            limits=httpx.Limits(
                max_connections=max_connections,
                max_keepalive_connections=max_connections,
                keepalive_expiry=policy.IDLE_EXPIRY,
            ),
            follow_redirects=False,
            trust_env=False,
            http1=True,
            http2=False,
        )
        # The client's default Accept, Accept-Encoding, Connection and User-Agent would
        # be added to every relayed request; a proxy sends only what the client sent.
        for name in list(self._client.headers.keys()):
            del self._client.headers[name]

    async def request(self, method: str, target: str, headers: RawHeaders, body: bytes) -> _HttpxResponse:
        url = self._base.copy_with(raw_path=policy.encode_target(self._prefix + target))
        if body:
            # Given the length, httpx frames the iterated body by it, not chunked.
            headers = [*headers, (b"Content-Length", b"%d" % len(body))]
        for attempt in (0, 1):
            probe = _ExchangeProbe()
            # No body: httpx adds ``Content-Length: 0`` itself for a POST, PUT or PATCH.
            content = _SentOnce(body) if body else None
            request = self._client.build_request(method, url, headers=headers, content=content, extensions={"trace": probe})
            try:
                response = await self._client.send(request, stream=True)
            except _FAILURES as exc:
                if probe.closed_unanswered(exc):
                    # Probably is not enough for a POST: replayed, it is a second generation.
                    if method not in policy.IDEMPOTENT:
                        raise UpstreamConnectError(policy.not_replayed(self.url, method)) from exc
                    if attempt == 0:
                        continue
                raise self._errors.mapped(exc, headers_received=False) from exc
            probe.response = response
            return _HttpxResponse(response, self._errors)
        raise AssertionError("unreachable")

    async def aclose(self) -> None:
        await self._client.aclose()
