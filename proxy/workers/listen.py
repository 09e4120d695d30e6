"""One port, a listening socket per worker slot: SO_REUSEPORT, the kernel spreading connections.

Why not one socket shared by every worker (uvicorn's and gunicorn's default)? Measured on
this machine, 40 streams opened at once through 2 workers all landed on one of them, and
through 4 workers 27/12/1/0: each wake-up of a worker's event loop accepts every
connection pending, so whichever worker wakes first takes the burst. A stream then holds
that worker for minutes; the busiest worker sets every stream's latency. With
SO_REUSEPORT the kernel hashes each connection to one socket's own queue, spread like
fair dice: 19/21 and 16/24 over 2 workers, 8/8/10/14 over 4.

The sockets are the supervisor's, one per slot, made and listening before any worker
starts; each worker inherits its slot's. When a worker dies while another still serves,
the supervisor closes that slot's socket at once, so the kernel hashes new connections to
the survivors (what it had queued on the dead one in the moment before is reset, as the
dead worker's own streams are; Linux 5.14+ migrates them with ``net.ipv4.tcp_migrate_req=1``),
and gives the replacement a fresh socket, bound but not listening until the replacement's
server starts. When the last serving worker dies, its slot's socket stays listening: what
the kernel queues there waits in its backlog for the replacement (about 2.5 s here)
instead of being refused, so with every worker down at once the port still answers.

A plain bind first proves that nothing listens on the port yet: a second proxy on the
same port fails with EADDRINUSE rather than silently sharing its traffic, as
SO_REUSEPORT between two programs of one user would. ``--port 0`` gives every slot the
one port the first socket got.
"""

from __future__ import annotations

import socket


def _address(host: str, port: int) -> tuple[socket.AddressFamily, tuple[str, int] | tuple[str, int, int, int]]:
    family, _, _, _, address = socket.getaddrinfo(host, port, type=socket.SOCK_STREAM, flags=socket.AI_PASSIVE)[0]
    return family, address  # type: ignore[return-value]


def _socket(host: str, port: int, reuse_port: bool) -> socket.socket:
    family, address = _address(host, port)
    sock = socket.socket(family, socket.SOCK_STREAM)
    try:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        if reuse_port:
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEPORT, 1)
        sock.bind(address)
    except BaseException:
        sock.close()
        raise
    return sock


def slot_sockets(host: str, port: int, count: int, backlog: int) -> list[socket.socket]:
    """``count`` sockets listening on one port with SO_REUSEPORT, one per worker slot."""
    if port != 0:
        # Raises EADDRINUSE if anything listens there already (another proxy included).
        _socket(host, port, reuse_port=False).close()
    sockets: list[socket.socket] = []
    try:
        for _ in range(count):
            sock = _socket(host, port, reuse_port=True)
            sockets.append(sock)
            sock.listen(backlog)
            port = sock.getsockname()[1]
    except BaseException:
        for sock in sockets:
            sock.close()
        raise
    return sockets


def fresh_slot(old: socket.socket) -> socket.socket:
    """A slot's new socket on ``old``'s address, bound but not listening (the replacement's
    server listens when it is ready to serve); ``old`` is closed, leaving the kernel's
    SO_REUSEPORT group, so new connections go to the sockets still listening."""
    host, port = old.getsockname()[:2]
    try:
        return _socket(host, port, reuse_port=True)
    finally:
        old.close()


def accepting(sock: socket.socket) -> bool:
    """Whether ``sock`` listens (a fresh slot does once its worker's server has started)."""
    return sock.getsockopt(socket.SOL_SOCKET, socket.SO_ACCEPTCONN) == 1
