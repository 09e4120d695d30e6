"""proxy/forward/headers.py: hop-by-hop headers stop at the proxy, in both directions;
everything else passes in order, names and values as the peer sent them."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import httpx
import pytest

from proxy.forward.headers import HOP_BY_HOP, client_response_headers, header_value, upstream_request_headers
from tests.support.scripted_upstream import Conn, RawUpstream
from tests.support.servers import ThreadServer

# One of each hop-by-hop name, in the mixed case real peers send.
HOPS = [(b"Connection", b"keep-alive, X-Hop-Only"), (b"Keep-Alive", b"timeout=5"), (b"Transfer-Encoding", b"chunked"),
        (b"Upgrade", b"h2c"), (b"Trailer", b"X-Checksum"), (b"TE", b"trailers"),
        (b"Proxy-Authenticate", b"Basic"), (b"Proxy-Authorization", b"Basic Zm9v"), (b"Proxy-Connection", b"close")]


def scope(headers: list[tuple[bytes, bytes]], client: tuple[str, int] | None = ("10.0.0.7", 5555),
          scheme: str = "http") -> dict[str, Any]:
    return {"type": "http", "headers": headers, "client": client, "scheme": scheme}


# -- the response, upstream to client ----------------------------------------------


def test_response_drops_every_hop_by_hop_name_and_keeps_the_rest_in_order() -> None:
    kept = [(b"Content-Type", b"text/event-stream"), (b"X-Request-Id", b"r-1"), (b"Set-Cookie", b"a=1"),
            (b"Set-Cookie", b"b=2"), (b"Content-Length", b"12"), (b"Cache-Control", b"no-cache")]
    mixed = [kept[0], *HOPS[:4], kept[1], kept[2], *HOPS[4:], kept[3], kept[4], kept[5]]
    assert client_response_headers(mixed) == kept
    assert {n.lower() for n, _ in HOPS} == HOP_BY_HOP


def test_response_drops_the_headers_its_connection_header_names() -> None:
    headers = [(b"connection", b"X-Hop-Only ,  x-also"), (b"X-Hop-Only", b"1"), (b"x-ALSO", b"2"),
               (b"Connection", b"x-third"), (b"x-third", b"3"), (b"x-kept", b"4")]
    assert client_response_headers(headers) == [(b"x-kept", b"4")]


def test_response_without_hop_by_hop_headers_is_unchanged() -> None:
    headers = [(b"content-type", b"application/json"), (b"x-a", b""), (b"x-a", b"again")]
    assert client_response_headers(headers) == headers
    assert client_response_headers([]) == []


# -- the request, client to upstream -------------------------------------------------


def test_request_drops_hop_by_hop_host_and_length_and_adds_forwarded() -> None:
    headers = [(b"Host", b"proxy:8100"), (b"Content-Length", b"10"), (b"Authorization", b"Bearer t"), *HOPS,
               (b"X-Hop-Only", b"1"), (b"Accept", b"text/event-stream")]
    assert upstream_request_headers(scope(headers, scheme="https")) == [
        (b"Authorization", b"Bearer t"), (b"Accept", b"text/event-stream"),
        (b"x-forwarded-for", b"10.0.0.7"), (b"x-forwarded-proto", b"https"), (b"x-forwarded-host", b"proxy:8100")]


def test_request_appends_to_a_prior_forwarded_for_and_replaces_the_other_forwarded() -> None:
    headers = [(b"host", b"h"), (b"X-Forwarded-For", b"1.2.3.4"), (b"X-Forwarded-Proto", b"gopher"),
               (b"X-Forwarded-Host", b"spoofed"), (b"x-kept", b"k")]
    assert upstream_request_headers(scope(headers)) == [
        (b"x-kept", b"k"), (b"x-forwarded-for", b"1.2.3.4, 10.0.0.7"), (b"x-forwarded-proto", b"http"),
        (b"x-forwarded-host", b"h")]


def test_request_without_client_or_host_adds_only_the_proto() -> None:
    assert upstream_request_headers(scope([(b"x-a", b"1")], client=None)) == [(b"x-a", b"1"),
                                                                             (b"x-forwarded-proto", b"http")]


def test_header_value_is_the_first_match_by_lower_case_name() -> None:
    headers = [(b"X-Queue-Time", b"12"), (b"x-queue-time", b"13")]
    assert header_value(headers, b"x-queue-time") == b"12"
    assert header_value(headers, b"x-other") is None


# -- through the real proxy ------------------------------------------------------------


@pytest.mark.parametrize("upstream_client", ["native", "httpx"])
def test_proxy_strips_hop_by_hop_response_headers_over_real_sockets(
        start_proxy: Callable[..., ThreadServer], upstream_client: str) -> None:
    """An upstream that sends every hop-by-hop header: the client sees none of them, and the
    end-to-end headers in the upstream's order."""
    body = b"hello, world"
    end_to_end = [(b"content-type", b"text/plain"), (b"x-first", b"1"), (b"set-cookie", b"a=1"),
                  (b"set-cookie", b"b=2"), (b"x-last", b"2")]
    hops = [(b"Connection", b"X-Hop-Only"), (b"Keep-Alive", b"timeout=5"), (b"Upgrade", b"h2c"),
            (b"Trailer", b"X-Checksum"), (b"Proxy-Authenticate", b"Basic"), (b"Proxy-Connection", b"keep-alive"),
            (b"X-Hop-Only", b"secret")]
    head = [end_to_end[0], *hops[:3], *end_to_end[1:3], *hops[3:], *end_to_end[3:]]

    def answer(conn: Conn) -> None:
        conn.read_request()
        lines = b"".join(b"%s: %s\r\n" % pair for pair in head)
        conn.send(b"HTTP/1.1 200 OK\r\n" + lines + b"Transfer-Encoding: chunked\r\n\r\n"
                  + b"%x\r\n%s\r\n0\r\n\r\n" % (len(body), body))

    with RawUpstream(answer, then=answer) as upstream:
        proxy = start_proxy(upstream.url, upstream_client=upstream_client)
        response = httpx.get(proxy.url + "/v1/models", timeout=10)
    assert response.status_code == 200 and response.content == body
    got = [(n.lower(), v) for n, v in response.headers.raw]
    dropped = {n.lower() for n, _ in hops} - {b"connection"}
    assert not dropped & {n for n, _ in got}, got
    # The ASGI server adds its own framing and date, never a value the upstream sent.
    assert (b"connection", b"X-Hop-Only") not in got
    assert [pair for pair in got if pair[0] not in (b"date", b"server", b"transfer-encoding", b"connection",
                                                    b"content-length")] == end_to_end
