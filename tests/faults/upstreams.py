"""Misbehaving upstreams on raw sockets: each connection runs a scripted handler in a thread.

Connection ``i`` runs ``handlers[i]`` while there are handlers left, then ``then`` (a
well-formed stream by default), so a test scripts the fault and the recovery after it.
Every handler's socket is closed when it returns; ``stop`` wakes handlers that stall.
"""

from __future__ import annotations

import socket
import struct
import threading
import time
from collections.abc import Callable

Handler = Callable[["Conn"], None]

EVENT = b'data: {"model":"m-fault","choices":[{"index":0,"delta":{"content":"tok"}}]}\n\n'
DONE = b"data: [DONE]\n\n"
SSE_HEAD = (b"HTTP/1.1 200 OK\r\ncontent-type: text/event-stream\r\ntransfer-encoding: chunked\r\n"
            b"connection: close\r\n\r\n")


def chunk(data: bytes) -> bytes:
    return b"%x\r\n%s\r\n" % (len(data), data)


class Conn:
    """One accepted connection and the request read from it."""

    def __init__(self, sock: socket.socket, stop: threading.Event) -> None:
        self.sock = sock
        self.stop = stop
        self.request = b""

    def read_request(self) -> bytes:
        data = b""
        while b"\r\n\r\n" not in data:
            part = self.sock.recv(65536)
            if not part:
                return data
            data += part
        head, _, body = data.partition(b"\r\n\r\n")
        length = 0
        for line in head.split(b"\r\n")[1:]:
            name, _, value = line.partition(b":")
            if name.strip().lower() == b"content-length":
                length = int(value.strip())
        while len(body) < length:
            part = self.sock.recv(65536)
            if not part:
                break
            body += part
        self.request = head + b"\r\n\r\n" + body
        return self.request

    def send(self, data: bytes) -> bool:
        """False once the peer (the proxy) has closed the connection."""
        try:
            self.sock.sendall(data)
            return True
        except OSError:
            return False

    def reset(self) -> None:
        """Close with RST instead of FIN."""
        self.sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
        self.sock.close()

    def closed_by_peer(self, timeout: float) -> bool:
        """Wait up to ``timeout`` s for the proxy to close its end (EOF or reset)."""
        self.sock.settimeout(timeout)
        try:
            while self.sock.recv(65536):
                pass
            return True
        except socket.timeout:
            return False
        except OSError:
            return True


def ok_stream(conn: Conn, events: int = 3) -> None:
    conn.read_request()
    conn.send(SSE_HEAD + b"".join(chunk(EVENT) for _ in range(events)) + chunk(DONE) + b"0\r\n\r\n")


class RawUpstream:
    def __init__(self, *handlers: Handler, then: Handler = ok_stream, port: int = 0) -> None:
        self.handlers = list(handlers)
        self.then = then
        self.stop = threading.Event()
        self.conns: list[Conn] = []
        self.requests: list[bytes] = []
        self.finished = 0
        self._lock = threading.Lock()
        self._threads: list[threading.Thread] = []
        self.listener = socket.socket()
        self.listener.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        self.listener.bind(("127.0.0.1", port))
        self.listener.listen(128)
        self.port = self.listener.getsockname()[1]

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    @property
    def accepted(self) -> int:
        return len(self.conns)

    def __enter__(self) -> RawUpstream:
        thread = threading.Thread(target=self._accept, daemon=True)
        thread.start()
        self._threads.append(thread)
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop.set()
        try:
            self.listener.shutdown(socket.SHUT_RDWR)
        except OSError:
            pass
        self.listener.close()
        for thread in self._threads:
            thread.join(timeout=5)

    def _accept(self) -> None:
        while not self.stop.is_set():
            try:
                sock, _ = self.listener.accept()
            except OSError:
                return
            with self._lock:
                index = len(self.conns)
                conn = Conn(sock, self.stop)
                self.conns.append(conn)
                handler = self.handlers[index] if index < len(self.handlers) else self.then
            thread = threading.Thread(target=self._run, args=(handler, conn), daemon=True)
            thread.start()
            self._threads.append(thread)

    def _run(self, handler: Handler, conn: Conn) -> None:
        try:
            handler(conn)
        except OSError:
            pass
        finally:
            if conn.request:
                self.requests.append(conn.request)
            try:
                conn.sock.close()
            except OSError:
                pass
            with self._lock:
                self.finished += 1

    def wait_finished(self, count: int, timeout: float = 5.0) -> bool:
        """True once ``count`` connections' handlers have returned."""
        deadline = time.monotonic() + timeout
        while self.finished < count and time.monotonic() < deadline:
            time.sleep(0.01)
        return self.finished >= count
