"""What both transports decide alike (proxy/forward/policy.py): the same fact reads the same
from either, and the httpx fallback maps each of its errors once, as native does."""

from __future__ import annotations

import asyncio
from collections.abc import Iterator

import httpx
import pytest

from proxy.forward import native_failures as failures
from proxy.forward import policy
from proxy.forward.errors import UpstreamConnectError, UpstreamError, UpstreamReadError, UpstreamTimeout
from proxy.forward.httpx_transport import HttpxTransport

URL = "http://up:1"


@pytest.fixture
def fallback() -> Iterator[HttpxTransport]:
    # Nothing is sent: the transport is only asked how it would name a failure.
    transport = HttpxTransport(URL, connect_timeout=2.0, read_timeout=7.0, max_connections=3)
    yield transport
    asyncio.run(transport.aclose())


@pytest.mark.parametrize(("httpx_error", "native_error", "after_headers", "expected"), [
    (httpx.ConnectError("refused"), failures.ConnectFailed(policy.cannot_connect(URL, httpx.ConnectError("refused"))),
     False, UpstreamConnectError),
    (httpx.ConnectTimeout("slow"), failures.ConnectTimeout(policy.connect_timeout(URL, 2.0)), False, UpstreamTimeout),
    (httpx.PoolTimeout("busy"), failures.PoolBusy(policy.pool_busy(URL, 3, 2.0)), False, UpstreamTimeout),
    (httpx.ReadTimeout("slow"), failures.HeadTimeout(policy.head_timeout(URL, 7.0)), False, UpstreamTimeout),
    (httpx.RemoteProtocolError("garbled"), httpx.RemoteProtocolError("garbled"), False, UpstreamConnectError),
    (httpx.ReadTimeout("slow"), failures.ReadStall(policy.read_stall(URL, 7.0)), True, UpstreamReadError),
    (httpx.ReadError("reset"), httpx.ReadError("reset"), True, UpstreamReadError),
    (ConnectionResetError("reset"), ConnectionResetError("reset"), True, UpstreamReadError),
])
def test_one_fact_one_error_and_one_text_from_either_transport(
        fallback: HttpxTransport, httpx_error: Exception, native_error: Exception, after_headers: bool,
        expected: type[UpstreamError]) -> None:
    from_httpx = fallback._errors.mapped(httpx_error, headers_received=after_headers)
    from_native = failures.mapped(native_error, URL, headers_received=after_headers)
    assert type(from_httpx) is type(from_native) is expected
    assert str(from_httpx) == str(from_native)
    assert URL in str(from_httpx)


@pytest.mark.parametrize(("path", "wire"), [
    ("/v1/chat/completions?a=1", b"/v1/chat/completions?a=1"),
    ("/caf\xe9", b"/caf\xe9"),  # raw_path as an ASGI server decodes it: the client's own bytes back
    ("/\u732b", "/\u732b".encode()),  # a decoded path beyond latin-1 goes as UTF-8
])
def test_a_target_becomes_the_same_bytes_in_both_transports(path: str, wire: bytes) -> None:
    assert policy.encode_target(path) == wire
