"""``--max-models`` and ``--max-tenants`` across workers: one admission list per label, each in a
file of the supervisor's private directory.

Admission is exactly the single-process rule (first come, only from a 2xx answer, never
evicted), now first come over all workers. A worker asks the file only for a name it
has not seen: one ``fstat`` tells whether another worker admitted something since, and a
new name takes an ``flock`` for the few microseconds of an append. The kernel drops the
lock of a worker that dies holding it, which a shared semaphore would not do. Names are
JSON lines (a name may hold a newline); only whole lines count.
"""

from __future__ import annotations

import fcntl
import json
import os

from proxy.metrics.labels import AdmittedLabels, ModelLabels
from proxy.metrics.tenants import TenantLabels


class SharedAdmission(AdmittedLabels):
    """An ``AdmittedLabels`` whose list lives in the file at ``path``, shared by every worker."""

    def __init__(self, limit: int, path: str) -> None:
        super().__init__(limit)
        self._fd = os.open(path, os.O_RDWR | os.O_CREAT | os.O_APPEND | os.O_CLOEXEC, 0o600)
        self._read = 0

    def _learned(self, label: str) -> bool:
        if os.fstat(self._fd).st_size != self._read:
            self._catch_up()
        return label in self._seen

    def _take(self, label: str) -> bool:
        fcntl.flock(self._fd, fcntl.LOCK_EX)
        try:
            self._catch_up()
            if label in self._seen:
                return True
            if len(self._seen) >= self.limit:
                return False
            os.write(self._fd, json.dumps(label).encode() + b"\n")
            self._catch_up()
            return True
        finally:
            fcntl.flock(self._fd, fcntl.LOCK_UN)

    def _catch_up(self) -> None:
        size = os.fstat(self._fd).st_size
        if size <= self._read:
            return
        data = os.pread(self._fd, size - self._read, self._read)
        end = data.rfind(b"\n") + 1
        for line in data[:end].splitlines():
            # The file's first `limit` names are the admitted ones, in order.
            if len(self._seen) < self.limit:
                self._seen.add(json.loads(line))
        self._read += end

    def close(self) -> None:
        os.close(self._fd)


class SharedModelLabels(SharedAdmission, ModelLabels):
    pass


class SharedTenantLabels(SharedAdmission, TenantLabels):
    pass
