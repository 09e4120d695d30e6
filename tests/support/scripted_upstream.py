"""A scripted upstream on raw sockets: each accepted connection runs a handler in a thread
of its own, which reads requests and writes exact bytes, as no real server would.

Connection ``i`` runs ``handlers[i]`` while there are handlers left, then ``then`` (a
well-formed stream by default), so a test scripts the fault and the recovery after it.
The relay tests (tests/faults, the proxy in a thread or a child process) and the transport
tests (tests/forward, the transport on the test's own event loop) both use it: a handler
that blocks never blocks the client under test.

Every handler's socket is closed when it returns. Leaving the ``with`` block sets
``stop`` and shuts every connection still open, which wakes a handler that waits or reads.
"""

from __future__ import annotations

import datetime
import ipaddress
import socket
import ssl
import struct
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

Handler = Callable[["Conn"], None]

EVENT = b'data: {"model":"m-fault","choices":[{"index":0,"delta":{"content":"tok"}}]}\n\n'
DONE = b"data: [DONE]\n\n"
SSE_HEAD = (b"HTTP/1.1 200 OK\r\ncontent-type: text/event-stream\r\ntransfer-encoding: chunked\r\n"
            b"connection: close\r\n\r\n")
OK = b"HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nok"


def chunk(data: bytes) -> bytes:
    return b"%x\r\n%s\r\n" % (len(data), data)


@dataclass(frozen=True)
class Request:
    """One request as read, in its parts."""

    line: bytes
    headers: list[tuple[bytes, bytes]]
    body: bytes

    @classmethod
    def parse(cls, raw: bytes) -> Request:
        head, _, body = raw.partition(b"\r\n\r\n")
        line, *fields = head.split(b"\r\n")
        pairs = (field.partition(b":") for field in fields)
        return cls(line, [(name.strip(), value.strip()) for name, _, value in pairs], body)

    def header(self, name: bytes) -> bytes | None:
        for key, value in self.headers:
            if key.lower() == name.lower():
                return value
        return None


class Conn:
    """One accepted connection: ``index`` counts from 1 in the order they were accepted."""

    def __init__(self, sock: socket.socket, index: int, upstream: RawUpstream) -> None:
        self.sock = sock
        self.index = index
        self.stop = upstream.stop
        self.request = b""  # the last one read
        self._upstream = upstream
        self._buffer = bytearray()

    def read_request(self, keep: bool = True) -> bytes:
        """The next request as it came, its body read by Content-Length; empty once the
        peer closed before a whole head. ``keep=False`` leaves it out of ``requests``
        (large bodies)."""
        buffer = self._buffer
        while (end := buffer.find(b"\r\n\r\n")) < 0:
            if not self._fill():
                return b""
        end += 4
        length = Request.parse(bytes(buffer[:end])).header(b"content-length")
        end += int(length) if length is not None else 0
        while len(buffer) < end and self._fill():
            pass
        request = bytes(buffer[:end])
        del buffer[:end]
        if keep:
            self.request = request
            self._upstream.requests.append(request)
        return request

    def send(self, data: bytes) -> bool:
        """False once the peer (the proxy) has closed the connection."""
        try:
            self.sock.sendall(data)
            return True
        except OSError:
            return False

    def close(self) -> None:
        """Close with FIN (over TLS, close_notify first)."""
        if isinstance(self.sock, ssl.SSLSocket):
            self.sock.settimeout(2)
            try:
                self.sock.unwrap()
            except (OSError, ValueError):
                pass
        self.sock.close()

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

    def _fill(self) -> bool:
        part = self.sock.recv(65536)
        self._buffer += part
        return bool(part)


def ok_stream(conn: Conn, events: int = 3) -> None:
    conn.read_request()
    conn.send(SSE_HEAD + b"".join(chunk(EVENT) for _ in range(events)) + chunk(DONE) + b"0\r\n\r\n")


def serve_forever(conn: Conn, reply: bytes = OK) -> None:
    """Answer every request on the connection with ``reply``, until the peer closes."""
    while conn.read_request():
        if not conn.send(reply):
            return


class RawUpstream:
    def __init__(self, *handlers: Handler, then: Handler = ok_stream, port: int = 0, host: str = "127.0.0.1",
                 ssl_context: ssl.SSLContext | None = None) -> None:
        self.handlers = list(handlers)
        self.then = then
        self.host = host
        self.ssl_context = ssl_context
        self.stop = threading.Event()
        self.conns: list[Conn] = []
        # Every request read, as it came, in the order read.
        self.requests: list[bytes] = []
        self.finished = 0
        self._lock = threading.Lock()
        self._threads: list[threading.Thread] = []
        self.listener = socket.socket(socket.AF_INET6 if ":" in host else socket.AF_INET)
        self.listener.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        self.listener.bind((host, port))
        self.listener.listen(128)
        self.port = self.listener.getsockname()[1]

    @property
    def url(self) -> str:
        scheme = "https" if self.ssl_context is not None else "http"
        host = f"[{self.host}]" if ":" in self.host else self.host
        return f"{scheme}://{host}:{self.port}"

    @property
    def accepted(self) -> int:
        return len(self.conns)

    @property
    def parsed(self) -> list[Request]:
        """``requests``, each in its parts."""
        return [Request.parse(raw) for raw in self.requests]

    def __enter__(self) -> RawUpstream:
        thread = threading.Thread(target=self._accept, daemon=True)
        thread.start()
        self._threads.append(thread)
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop.set()
        for sock in [self.listener, *(conn.sock for conn in self.conns)]:
            try:
                sock.shutdown(socket.SHUT_RDWR)
            except OSError:
                pass
        self.listener.close()
        for thread in self._threads:
            thread.join(timeout=5)

    def wait_finished(self, count: int, timeout: float = 5.0) -> bool:
        """True once ``count`` connections' handlers have returned."""
        deadline = time.monotonic() + timeout
        while self.finished < count and time.monotonic() < deadline:
            time.sleep(0.01)
        return self.finished >= count

    def _accept(self) -> None:
        while not self.stop.is_set():
            try:
                sock, _ = self.listener.accept()
            except OSError:
                return
            with self._lock:
                index = len(self.conns)
                conn = Conn(sock, index + 1, self)
                self.conns.append(conn)
                handler = self.handlers[index] if index < len(self.handlers) else self.then
            thread = threading.Thread(target=self._run, args=(handler, conn), daemon=True)
            thread.start()
            self._threads.append(thread)

    def _run(self, handler: Handler, conn: Conn) -> None:
        try:
            if self.ssl_context is not None:
                conn.sock = self.ssl_context.wrap_socket(conn.sock, server_side=True)
            handler(conn)
        except OSError:  # the peer went away, or refused our certificate
            pass
        finally:
            try:
                conn.sock.close()
            except OSError:
                pass
            with self._lock:
                self.finished += 1


@dataclass
class SelfSigned:
    server: ssl.SSLContext
    client: ssl.SSLContext


def self_signed_tls(tmp: Path) -> SelfSigned:
    """A certificate for 127.0.0.1 signed by itself, and a client context that trusts only it."""
    from cryptography import x509
    from cryptography.hazmat.primitives import hashes, serialization
    from cryptography.hazmat.primitives.asymmetric import ec
    from cryptography.x509.oid import NameOID

    key = ec.generate_private_key(ec.SECP256R1())
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "infermeter test upstream")])
    now = datetime.datetime.now(datetime.timezone.utc)
    cert = (
        x509.CertificateBuilder()
        .subject_name(name)
        .issuer_name(name)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - datetime.timedelta(minutes=5))
        .not_valid_after(now + datetime.timedelta(days=1))
        .add_extension(x509.SubjectAlternativeName([x509.IPAddress(ipaddress.ip_address("127.0.0.1"))]), critical=False)
        .add_extension(x509.BasicConstraints(ca=True, path_length=None), critical=True)
        .sign(key, hashes.SHA256())
    )
    cert_pem = cert.public_bytes(serialization.Encoding.PEM)
    key_pem = key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption())
    (tmp / "cert.pem").write_bytes(cert_pem)
    (tmp / "key.pem").write_bytes(key_pem)
    server = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    server.load_cert_chain(tmp / "cert.pem", tmp / "key.pem")
    client = ssl.create_default_context(cadata=cert_pem.decode("ascii"))
    return SelfSigned(server, client)
