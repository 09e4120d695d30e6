"""What a request head earns before it reaches the app: the checks and the answers."""

from __future__ import annotations

import httptools
import orjson

from proxy.config import HeadLimits

_REASONS = {400: "Bad Request", 405: "Method Not Allowed", 408: "Request Timeout", 414: "URI Too Long",
            431: "Request Header Fields Too Large", 501: "Not Implemented"}


class Refusal(Exception):
    """A request the edge answers itself, then closes the connection."""

    def __init__(self, status: int, message: str, code: str) -> None:
        super().__init__(message)
        self.status = status
        self.code = code


def refusal_bytes(refusal: Refusal) -> bytes:
    body = orjson.dumps({"error": {"message": str(refusal), "type": "invalid_request_error", "code": refusal.code}})
    head = (f"HTTP/1.1 {refusal.status} {_REASONS[refusal.status]}\r\ncontent-type: application/json\r\n"
            f"content-length: {len(body)}\r\nconnection: close\r\n\r\n")
    return head.encode("ascii") + body


def head_too_large(limits: HeadLimits) -> Refusal:
    return Refusal(431, f"request head exceeds {limits.max_head_bytes} bytes", "request_head_too_large")


def target_refusal(target: bytes, method: bytes) -> Refusal | None:
    """The refusal a request target that is not origin-form earns: absolute-form passes
    (nginx takes its path); asterisk-form gets 400 as from nginx (``OPTIONS *`` too: the
    upstream is no proxy's peer, and ``*`` means nothing to an LLM server); CONNECT gets
    405, since the proxy only ever relays to its one upstream."""
    if method == b"CONNECT":
        return Refusal(405, "CONNECT is not supported: infermeter only relays to its configured upstream.",
                       "method_not_allowed")
    if target == b"*":
        return Refusal(400, "an asterisk-form request target ('*') is not supported", "bad_request_target")
    return None


def check_head(target: bytes, headers: list[tuple[bytes, bytes]], parser: httptools.HttpRequestParser,
               limits: HeadLimits) -> int:
    """The body length a complete head declares (-1: chunked or none declared); raises the
    ``Refusal`` it earns instead: too many or too large headers, too large a whole head
    (also when it came in one read), or framing two hops could read differently. One pass."""
    if len(headers) > limits.max_headers:
        raise Refusal(431, f"more than {limits.max_headers} request headers", "too_many_request_headers")
    codings: list[bytes] = []
    largest = limits.max_header_bytes
    size = len(target)
    length = -1
    for name, value in headers:
        one = len(name) + len(value)
        if one > largest:
            raise Refusal(431, f"a request header exceeds {largest} bytes", "request_header_too_large")
        size += one + 4  # ": " and CRLF, as counted while a head is still arriving
        if name == b"transfer-encoding":
            codings += (c.strip().lower() for c in value.split(b","))
        elif name == b"content-length":
            length = int(value)  # the parser has refused anything but one decimal length
    if size > limits.max_head_bytes:
        raise head_too_large(limits)
    if not codings:
        return length
    if parser.get_http_version() == "1.0":
        raise Refusal(400, "Transfer-Encoding is not allowed on an HTTP/1.0 request", "bad_transfer_encoding")
    if codings != [b"chunked"]:
        raise Refusal(501, "only 'Transfer-Encoding: chunked' is supported", "unsupported_transfer_encoding")
    return -1
