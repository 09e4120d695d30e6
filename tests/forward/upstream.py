"""Raw scripted upstreams for transport tests: a TCP server whose handler writes exact bytes.

Each accepted connection runs ``script(conn)``; the server counts connections so tests
can tell reuse from reconnects, and remembers every request head it read.
"""

from __future__ import annotations

import asyncio
import datetime
import ipaddress
import socket
import ssl
import struct
from collections.abc import Awaitable, Callable, Coroutine
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, TypeVar

import uvloop

from proxy.forward.base import Transport, UpstreamResponse

T = TypeVar("T")


@dataclass
class Request:
    line: bytes
    headers: list[tuple[bytes, bytes]]
    body: bytes

    def header(self, name: bytes) -> bytes | None:
        for key, value in self.headers:
            if key.lower() == name.lower():
                return value
        return None


@dataclass
class ServerConn:
    reader: asyncio.StreamReader
    writer: asyncio.StreamWriter
    index: int
    server: ScriptedServer
    requests: list[Request] = field(default_factory=list)

    async def request(self) -> Request | None:
        """Read one request; ``None`` on EOF before one started."""
        try:
            head = await self.reader.readuntil(b"\r\n\r\n")
        except asyncio.IncompleteReadError:
            return None
        lines = head[:-4].split(b"\r\n")
        headers = [tuple(part.strip() for part in line.split(b":", 1)) for line in lines[1:]]
        req = Request(lines[0], [(h[0], h[1]) for h in headers], b"")
        length = req.header(b"content-length")
        if length is not None:
            req.body = await self.reader.readexactly(int(length))
        self.requests.append(req)
        self.server.requests.append(req)
        return req

    async def send(self, data: bytes) -> None:
        self.writer.write(data)
        await self.writer.drain()

    def reset(self) -> None:
        """Close with RST instead of FIN."""
        sock = self.writer.get_extra_info("socket")
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
        self.writer.transport.abort()

    async def wait_closed_by_peer(self, timeout: float) -> bool:
        """True once the client closed its end (EOF or reset) within ``timeout``."""

        async def drain() -> None:
            while await self.reader.read(65536):
                pass

        try:
            await asyncio.wait_for(drain(), timeout)
        except asyncio.TimeoutError:  # before OSError: on 3.11+ it is the builtin TimeoutError
            return False
        except (ConnectionError, OSError):
            pass
        return True


Script = Callable[[ServerConn], Awaitable[None]]


class ScriptedServer:
    def __init__(self, script: Script, ssl_context: ssl.SSLContext | None = None, host: str = "127.0.0.1") -> None:
        self.script = script
        self.host = host
        self.ssl_context = ssl_context
        self.connections = 0
        self.requests: list[Request] = []
        self.conns: list[ServerConn] = []
        self._tasks: set[asyncio.Future[None]] = set()
        self._server: asyncio.base_events.Server | None = None
        self.port = 0

    @property
    def url(self) -> str:
        scheme = "https" if self.ssl_context is not None else "http"
        host = f"[{self.host}]" if ":" in self.host else self.host
        return f"{scheme}://{host}:{self.port}"

    async def __aenter__(self) -> ScriptedServer:
        self._server = await asyncio.start_server(self._accept, self.host, 0, ssl=self.ssl_context)
        self.port = self._server.sockets[0].getsockname()[1]
        return self

    async def __aexit__(self, *exc: object) -> None:
        assert self._server is not None
        self._server.close()
        for conn in self.conns:
            conn.writer.transport.abort()
        for task in list(self._tasks):
            task.cancel()
        await asyncio.gather(*self._tasks, return_exceptions=True)
        await self._server.wait_closed()

    async def _accept(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        self.connections += 1
        conn = ServerConn(reader, writer, self.connections, self)
        self.conns.append(conn)
        # The script runs in a task of our own so that cancelling it at shutdown does not
        # surface as an error in asyncio's start_server callback.
        task = asyncio.ensure_future(self.script(conn))
        self._tasks.add(task)
        try:
            await task
        except (ConnectionError, asyncio.IncompleteReadError, asyncio.CancelledError):
            pass
        finally:
            self._tasks.discard(task)
            writer.transport.abort()


def run(coro: Coroutine[Any, Any, T], loop_kind: str) -> T:
    """Run ``coro`` on a fresh asyncio or uvloop loop (uvicorn picks uvloop when installed)."""
    loop = uvloop.new_event_loop() if loop_kind == "uvloop" else asyncio.new_event_loop()
    try:
        return loop.run_until_complete(coro)
    finally:
        loop.run_until_complete(loop.shutdown_asyncgens())
        loop.close()


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


OK = b"HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nok"


async def read_all(response: UpstreamResponse) -> bytes:
    try:
        return b"".join([chunk async for chunk in response.aiter_raw()])
    finally:
        await response.aclose()


async def get(transport: Transport, target: str = "/", method: str = "GET", body: bytes = b"") -> tuple[int, bytes]:
    response = await transport.request(method, target, [], body)
    return response.status, await read_all(response)


async def serve_forever(conn: ServerConn, reply: bytes = OK) -> None:
    while await conn.request() is not None:
        await conn.send(reply)
