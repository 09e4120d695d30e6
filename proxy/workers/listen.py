"""One port, a listening socket per worker: SO_REUSEPORT, the kernel spreading connections.

Why not one socket bound here and inherited by every worker (uvicorn's and gunicorn's
default)? Measured on this machine, 40 streams opened at once through 2 workers all
landed on one of them, and through 4 workers 27/12/1/0: each wake-up of a worker's
event loop accepts every connection pending, so whichever worker wakes first takes
the burst. A stream then holds that worker for minutes; the busiest worker sets every
stream's latency. With SO_REUSEPORT the kernel hashes each connection to one worker's
own queue, spread like fair dice: 19/21 and 16/24 over 2 workers, 8/8/10/14 over 4.

The price, and how it is paid:
- connections the kernel had already queued on a worker that dies are reset with it
  (Linux 5.14+ migrates them with ``net.ipv4.tcp_migrate_req=1``); they were that
  worker's connections, like the streams it was relaying;
- the port is reserved here by a bound socket that never listens (so ``--port 0``
  gives one port to all), after a plain bind proved nothing listens there yet:
  a second proxy on the same port fails with EADDRINUSE rather than silently
  sharing its traffic, as SO_REUSEPORT between two programs of one user would.
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


def reserve(host: str, port: int) -> socket.socket:
    """The supervisor's hold on the port: bound with SO_REUSEPORT, never listening."""
    if port != 0:
        # Raises EADDRINUSE if anything listens there already (another proxy included).
        _socket(host, port, reuse_port=False).close()
    return _socket(host, port, reuse_port=True)


def worker_socket(host: str, port: int) -> socket.socket:
    """A worker's own listening socket on the reserved port (uvicorn calls listen)."""
    return _socket(host, port, reuse_port=True)
