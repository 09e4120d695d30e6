"""Raw-socket HTTP/1.1 for requests no well-behaved client library would send."""

from __future__ import annotations

import socket
import time

import httptools
import orjson

CHAT = {"model": "m-fault", "messages": [{"role": "user", "content": "hi"}], "stream": True}


def chat_request(port: int, body: bytes | None = None, extra: bytes = b"", path: bytes = b"/v1/chat/completions") -> bytes:
    body = orjson.dumps(CHAT) if body is None else body
    return (b"POST %s HTTP/1.1\r\nHost: 127.0.0.1:%d\r\nContent-Type: application/json\r\n"
            b"Content-Length: %d\r\n%s\r\n" % (path, port, len(body), extra)) + body


def connect(port: int, timeout: float = 5.0) -> socket.socket:
    sock = socket.create_connection(("127.0.0.1", port), timeout=timeout)
    sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
    return sock


def read_until_closed(sock: socket.socket, timeout: float = 5.0) -> tuple[bytes, bool]:
    """Everything until the peer closes; (data, True) if it closed, (data, False) on timeout."""
    sock.settimeout(timeout)
    data = b""
    try:
        while True:
            part = sock.recv(65536)
            if not part:
                return data, True
            data += part
    except socket.timeout:
        return data, False
    except ConnectionResetError:
        return data, True


def read_at_least(sock: socket.socket, n: int, timeout: float = 5.0) -> bytes:
    sock.settimeout(timeout)
    data = b""
    deadline = time.monotonic() + timeout
    while len(data) < n and time.monotonic() < deadline:
        part = sock.recv(65536)
        if not part:
            break
        data += part
    return data


class _Done:
    def __init__(self) -> None:
        self.complete = False

    def on_message_complete(self) -> None:
        self.complete = True


def read_response(sock: socket.socket, timeout: float = 5.0) -> bytes:
    """One whole response (by its own framing), or what came before the peer closed."""
    done = _Done()
    parser = httptools.HttpResponseParser(done)
    sock.settimeout(timeout)
    data = b""
    try:
        while not done.complete:
            part = sock.recv(65536)
            if not part:
                break
            data += part
            parser.feed_data(part)
    except (socket.timeout, ConnectionResetError, httptools.HttpParserError):
        pass
    return data


def exchange(port: int, request: bytes, timeout: float = 5.0) -> bytes:
    """Send ``request`` on a fresh connection; the response, read by its framing."""
    with connect(port, timeout) as sock:
        sock.sendall(request)
        return read_response(sock, timeout)


def status_of(response: bytes) -> int:
    line = response.split(b"\r\n", 1)[0]
    parts = line.split(b" ")
    return int(parts[1]) if len(parts) > 1 and parts[1].isdigit() else 0
