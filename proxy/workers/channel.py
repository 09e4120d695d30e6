"""The snapshot channel between the supervisor and one worker: a socket pair made at spawn.

No path on disk, so two proxies can never share one (the trap of prometheus-client's
multiprocess directory, LiteLLM #42566, vLLM #49983), and nothing is left to clean up.
The supervisor writes one byte to ask; the worker's thread answers with a length-prefixed
snapshot of its registry. That thread never touches the relay's event loop, so a
collection costs the relay only the CPU (and GIL) it takes. End of file on either side
means the other process is gone.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import socket
import struct
import threading
from collections.abc import Callable

from prometheus_client import CollectorRegistry

from proxy.workers.merge import Merger
from proxy.workers.snapshot import decode, snapshot

log = logging.getLogger("infermeter.workers")

ASK = b"s"
_LENGTH = struct.Struct("!I")


def serve_snapshots(sock: socket.socket, registry: CollectorRegistry, parent_gone: Callable[[], None]) -> threading.Thread:
    """Worker side: answer every ask with a snapshot, in a daemon thread; on end of file
    (the supervisor died) call ``parent_gone`` so the worker does not outlive it."""

    def run() -> None:
        with sock:
            while True:
                try:
                    if not sock.recv(1):
                        break
                    body = snapshot(registry)
                    sock.sendall(_LENGTH.pack(len(body)) + body)
                except OSError:
                    break
        parent_gone()

    thread = threading.Thread(target=run, name="infermeter-snapshots", daemon=True)
    thread.start()
    return thread


class WorkerLink:
    """Supervisor side: fetches one worker's snapshots into the merger.

    At most one fetch is outstanding. A scrape waits for it up to a deadline and
    otherwise merges the last snapshot (older, so never larger: counters stay monotonic);
    the late answer still lands for the next scrape, and the stream never desyncs
    because nothing is cancelled halfway through a reply.
    """

    def __init__(self, worker: int, sock: socket.socket, merger: Merger) -> None:
        self.worker = worker
        self._sock = sock
        self._merger = merger
        self._streams: tuple[asyncio.StreamReader, asyncio.StreamWriter] | None = None
        self._pending: asyncio.Task[None] | None = None
        self._closed = False

    async def _fetch(self) -> None:
        if self._streams is None:
            self._streams = await asyncio.open_unix_connection(sock=self._sock)
        reader, writer = self._streams
        writer.write(ASK)
        await writer.drain()
        (length,) = _LENGTH.unpack(await reader.readexactly(_LENGTH.size))
        body = await reader.readexactly(length)
        self._merger.update(self.worker, decode(body))

    def _start(self) -> asyncio.Task[None]:
        if self._pending is None or self._pending.done():
            self._pending = asyncio.ensure_future(self._guarded())
        return self._pending

    async def _guarded(self) -> None:
        try:
            await self._fetch()
        except (OSError, EOFError, asyncio.IncompleteReadError, ValueError) as exc:
            # The worker died or is dying: its exit is handled (and logged) by the supervisor.
            log.debug("worker %d: snapshot failed: %r", self.worker, exc)

    async def refresh(self, deadline: float) -> None:
        if self._closed:
            return
        await asyncio.wait({self._start()}, timeout=deadline)

    async def close(self, deadline: float) -> None:
        """After the worker exited: let a reply already on its way land, then close."""
        self._closed = True
        if self._pending is not None and not self._pending.done():
            await asyncio.wait({self._pending}, timeout=deadline)
            self._pending.cancel()
        if self._streams is not None:
            self._streams[1].close()
        else:
            with contextlib.suppress(OSError):
                self._sock.close()
