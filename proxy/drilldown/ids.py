"""Request ids: the client's ``x-request-id`` when it is a sane token, else a new one.

The id goes to the upstream (vLLM adopts it as its own request id), into the request log
and, when tracing is off, into exemplars, whose label set Prometheus caps at 128 runes:
so a client's id is taken only when it is short printable ASCII without quotes or
backslashes; anything else is replaced, never escaped.
"""

from __future__ import annotations

import os
import re

REQUEST_ID = b"x-request-id"
MAX_LEN = 64
_SANE = re.compile(rb"[!#-\[\]-~]{1,%d}" % MAX_LEN)


def new_request_id() -> str:
    # 128 random bits as 32 hex digits: the shape of a trace id, about 0.5 us.
    return os.urandom(16).hex()


def client_request_id(value: bytes) -> str | None:
    """The client's id if the proxy may pass it on and record it as it is."""
    if _SANE.fullmatch(value) is None:
        return None
    return value.decode("ascii")
