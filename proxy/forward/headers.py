"""Header rewriting at the proxy boundary: hop-by-hop headers out, X-Forwarded-* in.

Names are compared lower-cased; values pass through as the peer sent them.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from typing import Any

from proxy.forward.base import RawHeaders

# RFC 9110 section 7.6.1, plus the legacy names proxies still meet in the wild.
HOP_BY_HOP = frozenset({
    b"connection", b"keep-alive", b"proxy-connection", b"proxy-authenticate", b"proxy-authorization",
    b"te", b"trailer", b"transfer-encoding", b"upgrade",
})
# The transport writes these itself from the upstream URL and the body it sends.
_SET_BY_TRANSPORT = frozenset({b"host", b"content-length"})
_FORWARDED = frozenset({b"x-forwarded-for", b"x-forwarded-proto", b"x-forwarded-host"})
# What is dropped when no Connection header names more: built once, not per request.
_DROP_UPSTREAM = HOP_BY_HOP | _SET_BY_TRANSPORT
_NONE: frozenset[bytes] = frozenset()


def _connection_tokens(headers: Iterable[tuple[bytes, bytes]]) -> frozenset[bytes]:
    tokens: set[bytes] | None = None
    for name, value in headers:
        if name.lower() == b"connection":
            if tokens is None:
                tokens = set()
            tokens.update(t.strip().lower() for t in value.split(b",") if t.strip())
    return _NONE if tokens is None else frozenset(tokens)


def upstream_request_headers(scope: Mapping[str, Any]) -> RawHeaders:
    """The client's headers as the upstream should see them."""
    headers: list[tuple[bytes, bytes]] = scope["headers"]
    tokens = _connection_tokens(headers)
    drop = _DROP_UPSTREAM | tokens if tokens else _DROP_UPSTREAM
    out: RawHeaders = []
    host = b""
    prior_for = b""
    for name, value in headers:
        lname = name.lower()
        if lname == b"host":
            host = value
        if lname == b"x-forwarded-for":
            prior_for = value
            continue
        if lname in drop or lname in _FORWARDED:
            continue
        out.append((name, value))
    client = scope.get("client")
    if client:
        ip = client[0].encode("latin-1")
        out.append((b"x-forwarded-for", prior_for + b", " + ip if prior_for else ip))
    out.append((b"x-forwarded-proto", scope.get("scheme", "http").encode("latin-1")))
    if host:
        out.append((b"x-forwarded-host", host))
    return out


def client_response_headers(headers: RawHeaders) -> RawHeaders:
    """The upstream's response headers as the client should see them.

    Content-Length stays (the body is relayed byte for byte); Transfer-Encoding goes, the
    ASGI server frames the body again for its own connection.
    """
    tokens = _connection_tokens(headers)
    drop = HOP_BY_HOP | tokens if tokens else HOP_BY_HOP
    return [(n, v) for n, v in headers if n.lower() not in drop]


def header_value(headers: RawHeaders, name: bytes) -> bytes | None:
    for n, v in headers:
        if n.lower() == name:
            return v
    return None
