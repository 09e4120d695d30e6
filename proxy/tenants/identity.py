"""The one call the relay makes per request when a tenant source is set: headers in, tenant out.

The first source that applies (DESIGN.md section 14): ``--tenant-header NAME``, a header a
trusted gateway sets (spoofable by a client that reaches the sidecar directly); then
``--tenant-keys FILE``, the request's API key (``Authorization: Bearer``, else
``x-api-key``, else ``api-key``) looked up by its digest; else ``none``.
"""

from __future__ import annotations

from collections.abc import Sequence

from proxy.forward.base import RawHeaders
from proxy.forward.headers import header_value
from proxy.tenants.keys import TenantKeys
from proxy.tenants.names import NONE, tenant_value

AUTHORIZATION = b"authorization"
# Where clients put an API key, after Authorization: Bearer (Anthropic's and Azure OpenAI's SDKs).
KEY_HEADERS = (b"x-api-key", b"api-key")
# Headers that carry secrets: never a tenant header, whose value becomes a label.
SECRET_HEADERS = frozenset({"authorization", "proxy-authorization", "cookie", "x-api-key", "api-key"})


def api_key(headers: Sequence[tuple[bytes, bytes]]) -> bytes | None:
    """The request's API key, or None."""
    found: bytes | None = None
    rank = len(KEY_HEADERS)
    for name, value in headers:
        if name == AUTHORIZATION:
            if value[:7].lower() == b"bearer ":
                return value[7:].strip() or None
        elif name in KEY_HEADERS:
            at = KEY_HEADERS.index(name)
            if at < rank:
                found, rank = value.strip(), at
    return found or None


class TenantIdentity:
    def __init__(self, header: str | None, keys: TenantKeys | None) -> None:
        # ASGI servers hand header names lower-cased.
        self.header = header.lower().encode("latin-1") if header else None
        self.keys = keys

    def __call__(self, headers: RawHeaders) -> str:
        if self.header is not None:
            value = header_value(headers, self.header)
            if value is not None:
                tenant = tenant_value(value)
                if tenant != NONE:
                    return tenant
        if self.keys is not None:
            key = api_key(headers)
            if key is not None:
                return self.keys.tenant(key)
        return NONE

    def close(self) -> None:
        if self.keys is not None:
            self.keys.close()


def build_identity(header: str | None, keys_path: str | None) -> TenantIdentity | None:
    """None when no tenant source is set: the relay then does nothing per request."""
    if not header and not keys_path:
        return None
    return TenantIdentity(header, TenantKeys(keys_path) if keys_path else None)
