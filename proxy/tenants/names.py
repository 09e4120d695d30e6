"""What a tenant value may be: at most 64 characters of ``[A-Za-z0-9._:-]``.

Anything else is ``invalid`` and a request that names no tenant is ``none``: a label value
stays short, printable and safe in PromQL, a log line and a span, whatever a client sends.
"""

from __future__ import annotations

import re

from proxy.metrics.labels import OVERFLOW

NONE = "none"
INVALID = "invalid"
OTHER = OVERFLOW
MAX_TENANT_CHARS = 64
# Values that never take a label slot: they are not tenants.
RESERVED = frozenset({NONE, INVALID, OTHER})

_VALID = re.compile(rb"[A-Za-z0-9._:-]+\Z").match


def tenant_value(raw: bytes) -> str:
    """The tenant a header's bytes name: cut to 64 characters, ``invalid`` past the
    allowed ones, ``none`` when empty."""
    raw = raw.strip()[:MAX_TENANT_CHARS]
    if not raw:
        return NONE
    return raw.decode("ascii") if _VALID(raw) else INVALID


def is_tenant_name(name: str) -> bool:
    """Whether ``name`` is a value ``tenant_value`` keeps as it is (a keys file's tenant names must be)."""
    return name.isascii() and name not in RESERVED and tenant_value(name.encode("ascii")) == name
