"""Which client request ids are kept as they are, and the ids made for the others."""

from __future__ import annotations

import pytest

from proxy.drilldown.ids import client_request_id, new_request_id


@pytest.mark.parametrize("value, kept", [
    (b"abc-123", "abc-123"), (b"x" * 64, "x" * 64), (b"x" * 65, None), (b"", None), (b"has space", None),
    (b'quote"d', None), (b"back\\slash", None), (b"caf\xc3\xa9", None), (b"tab\t", None),
])
def test_client_request_id(value: bytes, kept: str | None) -> None:
    assert client_request_id(value) == kept


def test_new_request_ids_are_unique_hex() -> None:
    ids = {new_request_id() for _ in range(1000)}
    assert len(ids) == 1000 and all(len(i) == 32 and int(i, 16) >= 0 for i in ids)
