"""``--tenant-keys FILE``: its format, its errors (which quote nothing from it), and reloads
while the proxy runs: a new map takes effect without a restart, a broken one is logged and the
last good map stays."""

from __future__ import annotations

import json
import logging
import os
import subprocess
import sys
from collections.abc import Callable
from pathlib import Path

import openai
import pytest

from proxy.tenants.keys import KeysFileError, TenantKeys, load_keys
from tests.support.metrics import after_requests, scrape
from tests.support.sdk import closing
from tests.support.servers import REPO, ThreadServer
from tests.support.wait import wait_for
from tests.tenants.conftest import KEYS, digest, write_keys

Start = Callable[..., ThreadServer]


def test_json_and_yaml_files_map_digests_to_tenants(tmp_path: Path) -> None:
    path = tmp_path / "keys.yaml"
    path.write_text(f"# comments are fine\nalpha: {digest(KEYS['alpha'])}\n"
                    f"beta:\n  - {digest(KEYS['beta']).upper()}\n  - {digest('sk-beta-second')}\nnobody: []\n")
    assert load_keys(str(path)) == {digest(KEYS["alpha"]): "alpha", digest(KEYS["beta"]): "beta",
                                    digest("sk-beta-second"): "beta"}
    write_keys(path, KEYS)
    assert set(load_keys(str(path)).values()) == set(KEYS)


@pytest.mark.parametrize("text, says", [
    ("", "expected a mapping"),
    ("[1, 2]", "expected a mapping"),
    ('{"alpha": "sk-alpha-KEYSECRET-1f0b7c"}', "tenant #1: each key must be given as its SHA-256 digest"),
    ('{"sk-alpha-KEYSECRET-1f0b7c": "alpha"}', "tenant #1: each key must be given as its SHA-256 digest"),
    ('{"team a": "%s"}' % ("0" * 64), "tenant #1: a name must be"),
    ('{"other": "%s"}' % ("0" * 64), "tenant #1: a name must be"),
    ('{"a": "%s", "b": ["%s"]}' % ("0" * 64, "0" * 64), "listed under two tenants, a and b"),
    ("alpha: [sk-alpha-KEYSECRET-1f0b7c\n", "neither JSON nor valid YAML at line 2"),
    ("\udcff", "not UTF-8"),
])
def test_a_malformed_file_says_why_and_quotes_nothing(tmp_path: Path, text: str, says: str) -> None:
    path = tmp_path / "keys"
    path.write_bytes(text.encode("utf-8", "surrogateescape"))
    with pytest.raises(KeysFileError) as caught:
        load_keys(str(path))
    assert says in str(caught.value)
    assert "KEYSECRET" not in str(caught.value)


def test_unknown_keys_are_named_by_their_digest_and_hashed_once(tmp_path: Path) -> None:
    path = tmp_path / "keys.json"
    write_keys(path, {"alpha": KEYS["alpha"]})
    keys = TenantKeys(str(path), interval=60)
    try:
        assert keys.tenant(KEYS["alpha"].encode()) == "alpha"
        assert keys.tenant(b"sk-who") == "key:" + digest("sk-who")[:8]
        # A digest stays cached for the key; the map it is looked up in may change.
        keys.digests = {digest("sk-who"): "late"}
        assert keys.tenant(b"sk-who") == "late"
    finally:
        keys.close()


def _tenant_of(proxy: ThreadServer, key: str) -> str:
    """The tenant label the proxy counts one request with ``key`` under."""
    before = scrape(proxy.url)
    client = closing(openai.OpenAI(base_url=proxy.url + "/v1", api_key=key, max_retries=0))
    client.chat.completions.create(model="m", messages=[{"role": "user", "content": "x"}], max_tokens=1)
    delta = after_requests(proxy.url, before, 1) - before
    [tenant] = [s["tenant"] for s in delta.after.series("infermeter_tenant_requests_total")
                if delta.get("infermeter_tenant_requests_total", **s) == 1]
    return tenant


def test_the_file_is_reloaded_without_a_restart(start_simulator: Start, start_proxy: Start, keys_file: Path,
                                                caplog: pytest.LogCaptureFixture) -> None:
    sim = start_simulator(ttft=0, tbt=0, output_tokens=1)
    proxy = start_proxy(sim.url, tenant_keys=str(keys_file))
    newcomer = "sk-newcomer-KEYSECRET-c0ffee"
    assert _tenant_of(proxy, KEYS["alpha"]) == "alpha"
    assert _tenant_of(proxy, newcomer) == "key:" + digest(newcomer)[:8]

    # Written in place, as an editor or `kubectl` would: the new map within a check or two.
    write_keys(keys_file, {"alpha": KEYS["alpha"], "newcomer": newcomer})
    wait_for(lambda: _tenant_of(proxy, newcomer) == "newcomer", "the new mapping used", timeout=10)

    # A broken file: an ERROR line, and the last good map serves on.
    caplog.clear()
    with caplog.at_level(logging.INFO, logger="infermeter.tenants"):
        keys_file.write_text('{"alpha": "sk-alpha-KEYSECRET-1f0b7c", ')
        wait_for(lambda: any(r.levelno == logging.ERROR for r in caplog.records), "the reload error logged", timeout=10)
        assert _tenant_of(proxy, newcomer) == "newcomer"
        errors = [r.getMessage() for r in caplog.records if r.levelno == logging.ERROR]
        # (Two if a check caught the file between its truncation and the write.)
        assert 1 <= len(errors) <= 2 and all("keeping the last good map (2 keys)" in e for e in errors), errors
        assert "KEYSECRET" not in caplog.text

        # Replaced by rename (a ConfigMap's swap): seen too.
        fresh = keys_file.with_name("fresh.json")
        fresh.write_text(json.dumps({"renamed": [digest(newcomer)]}))
        os.replace(fresh, keys_file)
        wait_for(lambda: _tenant_of(proxy, newcomer) == "renamed", "the renamed file used", timeout=10)
    assert len([r for r in caplog.records if r.levelno == logging.ERROR]) == len(errors)
    assert any("reloaded" in r.getMessage() for r in caplog.records)


def test_a_malformed_file_at_start_is_a_clear_error(tmp_path: Path) -> None:
    path = tmp_path / "keys.json"
    path.write_text('{"alpha": "sk-alpha-KEYSECRET-1f0b7c"}')
    done = subprocess.run([sys.executable, "-m", "proxy", "serve", "--port", "0", "--tenant-keys", str(path)],
                          cwd=REPO, env={**os.environ, "PYTHONPATH": str(REPO)}, capture_output=True, text=True,
                          timeout=60)
    assert done.returncode == 2
    assert done.stderr.strip() == (f"infermeter serve: error: --tenant-keys: {path}: tenant #1: each key must be given "
                                   "as its SHA-256 digest, 64 hex digits (never the key itself)")
    assert "KEYSECRET" not in done.stdout + done.stderr
