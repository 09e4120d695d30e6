"""The supervisor's private directory: its unix socket and the shared model list.

Made per supervisor, never shared (``mkdtemp``, mode 0700), removed at exit. A
supervisor killed with SIGKILL cannot remove it, so the next one to start removes every
such directory whose owner is gone. The owner holds an ``flock`` on its directory for its
whole life; the kernel drops the lock when the process dies, however it dies, so a lock
that can be taken means a dead owner, across PID namespaces too (containers sharing a
/tmp), where a PID would say nothing. The directory is locked under a name no sweep
looks at and only then renamed to its swept name, so none is ever seen unlocked alive.
"""

from __future__ import annotations

import contextlib
import fcntl
import logging
import os
import re
import shutil
import tempfile

log = logging.getLogger("infermeter.workers")

PREFIX = "infermeter-"
# infermeter-<supervisor pid>-<mkdtemp's random part>
_SWEPT = re.compile(re.escape(PREFIX) + r"\d+-[a-z0-9_]+")


class PrivateDir:
    def __init__(self, parent: str | None = None) -> None:
        parent = parent or tempfile.gettempdir()
        sweep(parent)
        fresh = tempfile.mkdtemp(prefix="." + PREFIX, dir=parent)
        self._fd = os.open(fresh, os.O_RDONLY | os.O_DIRECTORY | os.O_CLOEXEC)
        fcntl.flock(self._fd, fcntl.LOCK_EX)
        self.path = os.path.join(parent, f"{PREFIX}{os.getpid()}-{os.path.basename(fresh)[len(PREFIX) + 1:]}")
        os.rename(fresh, self.path)

    def close(self) -> None:
        shutil.rmtree(self.path, ignore_errors=True)
        os.close(self._fd)


def sweep(parent: str) -> list[str]:
    """Remove the private directories under ``parent`` whose supervisor is gone; their paths."""
    removed = []
    with os.scandir(parent) as entries:
        for entry in entries:
            if not _SWEPT.fullmatch(entry.name) or not entry.is_dir(follow_symlinks=False):
                continue
            with contextlib.suppress(OSError):
                if entry.stat(follow_symlinks=False).st_uid == os.getuid() and _remove_if_unlocked(entry.path):
                    removed.append(entry.path)
    if removed:
        log.info("removed %d private directories left by supervisors that were killed: %s",
                 len(removed), ", ".join(removed))
    return removed


def _remove_if_unlocked(path: str) -> bool:
    fd = os.open(path, os.O_RDONLY | os.O_DIRECTORY | os.O_CLOEXEC | os.O_NOFOLLOW)
    try:
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            return False  # its supervisor lives
        shutil.rmtree(path)
        return True
    finally:
        os.close(fd)
