"""What can go wrong inside the native transport, and the one mapping to the relay's errors.

Inside the transport a failure is a low-level fact: an OSError or parser error as it
came, or one of these markers. ``mapped`` turns each into one of the relay's three
errors, once, at the transport's two boundaries (``request`` and ``aiter_raw``), as
httpx maps httpcore's.
"""

from __future__ import annotations

from proxy.forward import policy
from proxy.forward.errors import UpstreamConnectError, UpstreamError, UpstreamReadError, UpstreamTimeout


class Failure(Exception):
    """A failure the transport itself detected; its text is the whole message."""


class ConnectFailed(Failure):
    pass


class ConnectTimeout(Failure):
    pass


class PoolBusy(Failure):
    pass


class HeadTimeout(Failure):
    pass


class ReadStall(Failure):
    pass


class ClosedByUs(Failure):
    """We closed the response before its end: whoever still iterates must not take our
    close for the end of a close-delimited body."""


class Unsolicited(Exception):
    """Bytes after a complete response: no request asked for them (stops the parser)."""


def mapped(exc: BaseException, url: str, headers_received: bool) -> UpstreamError:
    """What went wrong, as the relay answers it: 502, 504, or a cut stream."""
    if isinstance(exc, UpstreamError):
        return exc
    if isinstance(exc, (ConnectTimeout, PoolBusy, HeadTimeout)):
        return UpstreamTimeout(str(exc))
    if isinstance(exc, (ReadStall, ClosedByUs)):
        return UpstreamReadError(str(exc))
    if isinstance(exc, Failure):
        return UpstreamConnectError(str(exc))
    if headers_received:
        return UpstreamReadError(policy.broke_off(url, exc))
    return UpstreamConnectError(policy.failed_before_headers(url, exc))
