"""``--tenant-keys FILE``: API keys, by their SHA-256 digests, mapped to tenant names.

The file is JSON or YAML (YAML needs PyYAML, as ``--eval-rubrics`` does): a mapping of
tenant name to one digest or a list of them, 64 hex digits each (``sha256sum`` of the
key's bytes; docs/attribution.md). It holds no key, only digests, and no message here
quotes anything from it: a file written the wrong way round would hold raw keys, and
those must reach no log line or error.

A thread checks the file's identity (inode, size, mtime) once a second and reloads it
when it changed, off the event loop; a file that no longer loads is logged once per change
and the last good map stays. The relay only reads ``digests``, which a reload replaces
whole, so it never sees half a map.
"""

from __future__ import annotations

import hashlib
import json
import logging
import os
import re
import threading
from pathlib import Path
from typing import Any

import yaml

from proxy.tenants.names import is_tenant_name

log = logging.getLogger("infermeter.tenants")

CHECK_INTERVAL = 1.0
# Digests of keys seen recently: one SHA-256 (~0.5 us for a key) per request saved for the
# keys a deployment really uses. Emptied when full: a flood of distinct keys costs a hash
# each, never memory.
DIGEST_CACHE = 4096
_DIGEST = re.compile(r"[0-9a-f]{64}\Z")

Stamp = tuple[int, int, int] | None


class KeysFileError(ValueError):
    """The keys file cannot be read or is not a valid map (the message quotes nothing from it)."""


def digest_of(key: bytes) -> str:
    return hashlib.sha256(key).hexdigest()


def load_keys(path: str) -> dict[str, str]:
    """The file's map of key digest -> tenant name."""
    try:
        text = Path(path).read_text(encoding="utf-8")
    except OSError as exc:
        raise KeysFileError(f"{path}: cannot read it ({exc.strerror})") from None
    except UnicodeDecodeError:
        raise KeysFileError(f"{path}: not UTF-8 text") from None
    data = _parse(path, text)
    if not isinstance(data, dict):
        raise KeysFileError(f"{path}: expected a mapping of tenant name to a key digest or a list of them")
    tenants: dict[str, str] = {}
    for n, (name, entries) in enumerate(data.items(), 1):
        if not isinstance(name, str) or not is_tenant_name(name):
            raise KeysFileError(f"{path}: tenant #{n}: a name must be 1-64 characters of A-Z a-z 0-9 . _ : - "
                                "and not none, invalid or other")
        for digest in entries if isinstance(entries, list) else [entries]:
            if not isinstance(digest, str) or not _DIGEST.match(digest.lower()):
                raise KeysFileError(f"{path}: tenant #{n}: each key must be given as its SHA-256 digest, "
                                    "64 hex digits (never the key itself)")
            owner = tenants.setdefault(digest.lower(), name)
            if owner != name:
                raise KeysFileError(f"{path}: one digest is listed under two tenants, {owner} and {name}")
    return tenants


def _parse(path: str, text: str) -> Any:
    try:
        return json.loads(text)
    except ValueError:
        pass
    try:
        return yaml.safe_load(text)
    except yaml.YAMLError as exc:
        # Only where: a YAML error's own text quotes the offending line.
        mark = getattr(exc, "problem_mark", None)
        where = f" at line {mark.line + 1}, column {mark.column + 1}" if mark is not None else ""
        raise KeysFileError(f"{path}: neither JSON nor valid YAML{where}") from None


def _stamp(path: str) -> Stamp:
    try:
        st = os.stat(path)
    except OSError:
        return None
    return (st.st_ino, st.st_size, st.st_mtime_ns)


class TenantKeys:
    """The live map of one keys file; raises ``KeysFileError`` when it does not load at start."""

    def __init__(self, path: str, interval: float = CHECK_INTERVAL) -> None:
        self.path = path
        self.interval = interval
        # Stamped before reading: a change made during the read is seen at the next check.
        self._stamp = _stamp(path)
        self.digests = load_keys(path)
        self._recent: dict[bytes, str] = {}
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._watch, name="infermeter-tenant-keys", daemon=True)
        self._thread.start()

    def tenant(self, key: bytes) -> str:
        """The tenant an API key belongs to: its name in the file, else ``key:`` + 8 hex digits of its digest."""
        digest = self._recent.get(key)
        if digest is None:
            if len(self._recent) >= DIGEST_CACHE:
                self._recent.clear()
            digest = self._recent[key] = digest_of(key)
        name = self.digests.get(digest)
        return name if name is not None else "key:" + digest[:8]

    def check(self) -> bool:
        """Reload the file if it changed; True when a new map took effect."""
        stamp = _stamp(self.path)
        if stamp == self._stamp:
            return False
        self._stamp = stamp
        try:
            digests = load_keys(self.path)
        except KeysFileError as exc:
            log.error("--tenant-keys: %s; keeping the last good map (%d keys)", exc, len(self.digests))
            return False
        self.digests = digests
        log.info("--tenant-keys: reloaded %s: %d keys of %d tenants", self.path, len(digests), len(set(digests.values())))
        return True

    def _watch(self) -> None:
        while not self._stop.wait(self.interval):
            try:
                self.check()
            except Exception:  # the watcher must outlive any surprise; the map stays
                log.exception("--tenant-keys: checking %s failed", self.path)

    def close(self) -> None:
        self._stop.set()
        if self._thread is not threading.current_thread():
            self._thread.join(timeout=5)
