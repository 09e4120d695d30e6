"""Tenants' API keys and a keys file for them (DESIGN.md section 14)."""

from __future__ import annotations

import hashlib
import json
from pathlib import Path

import pytest

# Raw keys: only their digests go in the file, and none may show anywhere but upstream.
KEYS = {"alpha": "sk-alpha-KEYSECRET-1f0b7c", "beta": "sk-beta-KEYSECRET-92ad04", "gamma": "sk-gamma-KEYSECRET-5e3c11"}


def digest(key: str) -> str:
    return hashlib.sha256(key.encode()).hexdigest()


def write_keys(path: Path, tenants: dict[str, str]) -> None:
    """A keys file mapping each tenant to its key's digest (JSON)."""
    path.write_text(json.dumps({name: [digest(key)] for name, key in tenants.items()}))


@pytest.fixture
def keys_file(tmp_path: Path) -> Path:
    path = tmp_path / "tenants.json"
    write_keys(path, KEYS)
    return path
