"""Which local process is the upstream server: by ``--upstream-pid``, else by its port.

Shared by the system collector (RSS, CPU, start time) and the GPU collector (memory the
upstream holds on each GPU). Called from sampler threads only: finding a listener scans
sockets and processes, which is far too slow for the event loop.
"""

from __future__ import annotations

import ipaddress
import socket
import threading
import time
from collections.abc import Callable
from typing import Any

import psutil

from proxy.collectors.base import log
from proxy.config import UpstreamURL

_LOCAL_NAMES = frozenset({"localhost", "localhost.localdomain", "ip6-localhost", "ip6-loopback"})


class UpstreamProcessLocator:
    """Finds the upstream process and its descendants, and notices when it is replaced.

    A found process is kept while it runs (psutil's ``is_running`` also catches a reused
    pid); once it exits, or while none is found, the search is repeated at most every
    ``rescan_interval`` seconds, so a restarted server is picked up again.
    """

    def __init__(
        self,
        upstream: UpstreamURL | str,
        pid: int | None = None,
        psutil_module: Any = psutil,
        rescan_interval: float = 5.0,
        tree_ttl: float = 0.5,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        parsed = UpstreamURL.of(upstream)
        self._host = parsed.host.lower()
        self._port = parsed.port
        self._pid = pid
        self._ps = psutil_module
        self._rescan_interval = rescan_interval
        self._tree_ttl = tree_ttl
        self._clock = clock
        self._lock = threading.Lock()
        self._local: bool | None = None
        self._root: Any = None
        self._last_scan: float | None = None
        self._tree: list[Any] | None = None
        self._tree_at = 0.0
        self._missing_logged = False

    def tree(self) -> list[Any] | None:
        """The upstream's ``psutil.Process`` first, then its descendants; None when unknown."""
        with self._lock:
            now = self._clock()
            if self._tree is not None and now - self._tree_at < self._tree_ttl:
                return self._tree
            try:
                self._tree = self._refresh(now)
            except self._ps.Error as exc:
                # Whatever psutil raises here, the readers carry on without the process.
                log.debug("upstream process lookup failed: %s", exc)
                self._root, self._tree = None, None
            self._tree_at = now
            return self._tree

    def pids(self) -> frozenset[int] | None:
        tree = self.tree()
        return None if tree is None else frozenset(p.pid for p in tree)

    def forget(self) -> None:
        """Drop the cached process (a reader saw it vanish) so the next call searches again."""
        with self._lock:
            self._root = None
            self._tree = None

    def _refresh(self, now: float) -> list[Any] | None:
        ps = self._ps
        if self._root is not None and not _running(ps, self._root):
            log.info("upstream process %d exited", self._root.pid)
            self._root = None
        if self._root is None:
            if self._last_scan is not None and now - self._last_scan < self._rescan_interval:
                return None
            self._last_scan = now
            self._root = self._find()
            if self._root is None:
                return None
        try:
            children = list(self._root.children(recursive=True))
        except ps.NoSuchProcess:
            self._root = None
            return None
        except ps.AccessDenied:
            children = []
        return [self._root, *children]

    def _find(self) -> Any:
        ps = self._ps
        if self._pid is not None:
            try:
                proc = ps.Process(self._pid)
            except (ps.NoSuchProcess, ps.AccessDenied) as exc:
                self._log_missing(f"--upstream-pid {self._pid}: {type(exc).__name__}")
                return None
            self._log_found(proc, "--upstream-pid")
            return proc
        if not self._is_local():
            self._log_missing(f"{self._host} is not this host, so the upstream's process cannot be read here")
            return None
        pids = self._listening_pids()
        root = _root_of(ps, pids)
        if root is None:
            self._log_missing(
                f"no process visible here listens on port {self._port} "
                "(another user's process needs root; another container needs a shared PID namespace)"
            )
            return None
        self._log_found(root, f"port {self._port}")
        return root

    def _log_found(self, proc: Any, how: str) -> None:
        self._missing_logged = False
        try:
            what = " ".join(proc.cmdline()[:3]) or proc.name()
        except (self._ps.NoSuchProcess, self._ps.AccessDenied):
            what = "?"
        log.info("upstream process: pid %d (%s), found by %s", proc.pid, what, how)

    def _log_missing(self, why: str) -> None:
        if not self._missing_logged:
            self._missing_logged = True
            log.info("upstream process not found: %s; its memory, CPU and start time are not exported", why)

    def _is_local(self) -> bool:
        if self._local is None:
            self._local = _is_local_host(self._ps, self._host)
        return self._local

    def _listening_pids(self) -> set[int]:
        ps = self._ps
        pids: set[int] = set()
        owner_hidden = False
        try:
            for conn in ps.net_connections(kind="tcp"):
                if conn.status == ps.CONN_LISTEN and conn.laddr and conn.laddr.port == self._port:
                    if conn.pid:
                        pids.add(conn.pid)
                    else:
                        owner_hidden = True
        except ps.AccessDenied:
            # macOS, or a locked-down /proc: fall back to asking each process we may read.
            owner_hidden = True
        if pids or not owner_hidden:
            return pids
        for proc in ps.process_iter():
            try:
                reader = getattr(proc, "net_connections", None) or proc.connections
                conns = reader(kind="tcp")
            except (ps.NoSuchProcess, ps.AccessDenied, ps.ZombieProcess):
                continue
            if any(c.status == ps.CONN_LISTEN and c.laddr and c.laddr.port == self._port for c in conns):
                pids.add(proc.pid)
        return pids


def _running(ps: Any, proc: Any) -> bool:
    try:
        return bool(proc.is_running()) and proc.status() != ps.STATUS_ZOMBIE
    except (ps.NoSuchProcess, ps.ZombieProcess):
        return False
    except ps.AccessDenied:
        return True


def _root_of(ps: Any, pids: set[int]) -> Any:
    """The oldest listener whose parent does not listen too: the server, not its workers."""
    procs = []
    for pid in pids:
        try:
            proc = ps.Process(pid)
            procs.append((proc, proc.ppid(), proc.create_time()))
        except (ps.NoSuchProcess, ps.AccessDenied):
            continue
    roots = [(created, proc) for proc, ppid, created in procs if ppid not in pids]
    if not roots:
        return None
    return min(roots, key=lambda pair: pair[0])[1]


def _is_local_host(ps: Any, host: str) -> bool:
    host = host.strip("[]")
    if host in _LOCAL_NAMES:
        return True
    try:
        addresses = {str(ipaddress.ip_address(host))}
    except ValueError:
        if host == socket.gethostname().lower():
            return True
        try:
            addresses = {str(info[4][0]).split("%")[0] for info in socket.getaddrinfo(host, None)}
        except OSError:
            return False
    own = {a.address.split("%")[0] for addrs in ps.net_if_addrs().values() for a in addrs}
    for address in addresses:
        ip = ipaddress.ip_address(address)
        if ip.is_loopback or ip.is_unspecified or address in own:
            return True
    return False
