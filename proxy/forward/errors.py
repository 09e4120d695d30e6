"""The small set of upstream failures the relay knows about.

Each transport maps its own exceptions onto these once, at its boundary, so the relay
decides status codes and outcomes in one place.
"""

from __future__ import annotations


class UpstreamError(Exception):
    """Base class: the upstream could not give us a (complete) response."""


class UpstreamConnectError(UpstreamError):
    """Refused, unresolvable, TLS failure, or the connection broke before any response headers."""


class UpstreamTimeout(UpstreamError):
    """No response headers within the read timeout (or no connection within the connect timeout)."""


class UpstreamReadError(UpstreamError):
    """The response broke after its headers: reset, malformed framing, or a read stall past the timeout."""
