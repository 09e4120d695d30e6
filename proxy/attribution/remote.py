"""Attribution across ``--workers``: the supervisor reads the GPUs, the workers hold the requests.

Where the split is computed: in the supervisor's sampler thread, which alone knows each
interval's GPU increase, after asking every worker for its work in the interval. Each
interval is two exchanges on a socket pair made at spawn (beside the snapshot channel):

- ``m``: the worker closes the interval at once (``InFlight.measure``) and answers with its
  work and seconds in flight;
- ``s`` + rates: the supervisor, having summed every worker's work, sends one rate per
  unit (seconds and joules), and the worker settles its requests with it.

So every worker's requests are split at the same rate and attributed + unattributed is the
GPUs' increase exactly; a worker that does not answer takes no share (its part stays
unattributed in the supervisor). The worker exports the attributed counters, the
supervisor the unattributed ones; /metrics sums the workers'. The worker's side is a
daemon thread: the relay's loop is never involved.
"""

from __future__ import annotations

import logging
import select
import socket
import struct
import threading

from proxy.attribution.inflight import Work
from proxy.attribution.local import Attribution

log = logging.getLogger("infermeter.workers")

MEASURE = b"m"
SETTLE = b"s"
_DONE = b"k"
# The worker's first byte: it serves the channel from now on. Until then (a worker still
# starting) it is not asked, so a slow start is never taken for a dead worker.
_READY = b"r"
_WORK = struct.Struct("!dd")
_RATES = struct.Struct("!ddB")
# A worker's reply is a few microseconds of work; past this it is stuck or dying.
TIMEOUT = 2.0


def _exactly(sock: socket.socket, n: int) -> bytes:
    data = b""
    while len(data) < n:
        part = sock.recv(n - len(data))
        if not part:
            raise EOFError("the other side closed the attribution channel")
        data += part
    return data


def serve_attribution(sock: socket.socket, attribution: Attribution) -> threading.Thread:
    """Worker side: answer the supervisor's measure and settle, in a daemon thread."""

    def run() -> None:
        with sock:
            try:
                sock.sendall(_READY)
                while True:
                    kind = sock.recv(1)
                    if kind == MEASURE:
                        attribution.series.active = True
                        work = attribution.inflight.measure()
                        sock.sendall(_WORK.pack(work.work, work.seconds))
                    elif kind == SETTLE:
                        busy, energy, by_work = _RATES.unpack(_exactly(sock, _RATES.size))
                        attribution.inflight.settle(busy, energy, "work" if by_work else "seconds")
                        log.warning("DBG worker settled busy=%s energy=%s by=%s attributed=%s", busy, energy, by_work, attribution.series.totals())
                        sock.sendall(_DONE)
                    else:
                        break
            except (OSError, EOFError):
                pass
        # No more intervals will come: what is held is closed with the shares it has.
        attribution.close()

    thread = threading.Thread(target=run, name="infermeter-attribution", daemon=True)
    thread.start()
    return thread


class WorkerParty:
    """Supervisor side of one worker's channel, used from the sampler thread only. Once an
    exchange fails the channel is closed for good: half a reply would desync it."""

    def __init__(self, worker: int, sock: socket.socket) -> None:
        self.worker = worker
        self._sock: socket.socket | None = sock
        self._ready = False
        sock.settimeout(TIMEOUT)

    def measure(self) -> Work | None:
        try:
            sock = self._open()
            if not self._ready:
                if not select.select([sock], [], [], 0)[0]:
                    return None
                if _exactly(sock, 1) != _READY:
                    raise EOFError("the worker did not start the attribution channel")
                self._ready = True
            sock.sendall(MEASURE)
            work, seconds = _WORK.unpack(_exactly(sock, _WORK.size))
            return Work(work, seconds)
        except (OSError, EOFError) as exc:
            self._broken(exc)
            return None

    def settle(self, busy: float, energy: float, by: str) -> bool:
        if not self._ready:
            return False
        try:
            sock = self._open()
            sock.sendall(SETTLE + _RATES.pack(busy, energy, by == "work"))
            return _exactly(sock, 1) == _DONE
        except (OSError, EOFError) as exc:
            self._broken(exc)
            return False

    def _open(self) -> socket.socket:
        if self._sock is None:
            raise EOFError("closed")
        return self._sock

    def _broken(self, exc: BaseException) -> None:
        if self._sock is not None:
            log.debug("worker %d: attribution channel closed: %r", self.worker, exc)
            self.close()

    def close(self) -> None:
        sock, self._sock = self._sock, None
        if sock is not None:
            sock.close()
