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


def _completes(data: bytes) -> bool:
    done = _Done()
    try:
        httptools.HttpResponseParser(done).feed_data(data)
    except httptools.HttpParserError:
        pass
    return done.complete


def _response_end(data: bytes) -> int | None:
    """Where the first response in ``data`` ends; None while it is incomplete, and all of
    ``data`` once it cannot be parsed."""
    done = _Done()
    try:
        httptools.HttpResponseParser(done).feed_data(data)
    except httptools.HttpParserError:
        if not done.complete:
            return len(data)
    if not done.complete:
        return None
    low, high = 1, len(data)  # the shortest prefix that holds a whole response
    while low < high:
        middle = (low + high) // 2
        if _completes(data[:middle]):
            high = middle
        else:
            low = middle + 1
    return low


def read_response(sock: socket.socket, timeout: float = 5.0) -> bytes:
    """One whole response (by its own framing), or what came before the peer closed.

    No byte past its end is taken off the socket: a pipelined response that arrived in
    the same segment is left for the next call (reading it here lost it, issue 19)."""
    sock.settimeout(timeout)
    data = b""
    try:
        while True:
            ahead = sock.recv(65536, socket.MSG_PEEK)
            if not ahead:
                break
            end = _response_end(data + ahead)
            want = len(data) + len(ahead) if end is None else end
            while len(data) < want:
                data += sock.recv(want - len(data))
            if end is not None:
                break
    except (socket.timeout, ConnectionResetError):
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


class _Responses:
    """httptools callbacks that split a byte stream into whole responses."""

    def __init__(self) -> None:
        self.parser = httptools.HttpResponseParser(self)
        self.done: list[tuple[int, bytes]] = []
        self.status = 0
        self.body = b""

    def on_headers_complete(self) -> None:
        self.status = self.parser.get_status_code()

    def on_body(self, body: bytes) -> None:
        self.body += body

    def on_message_complete(self) -> None:
        self.done.append((self.status, self.body))
        self.body = b""


def read_responses(sock: socket.socket, count: int, timeout: float = 10.0) -> list[tuple[int, bytes]]:
    """Up to ``count`` responses from one connection, in order, as (status, body); fewer if
    the peer closes or ``timeout`` passes first."""
    responses = _Responses()
    sock.settimeout(timeout)
    try:
        while len(responses.done) < count:
            part = sock.recv(65536)
            if not part:
                break
            responses.parser.feed_data(part)
    except (socket.timeout, ConnectionResetError):
        pass
    return responses.done


def send_for(sock: socket.socket, data: bytes, seconds: float) -> int:
    """Send as much of ``data`` as the peer takes within ``seconds``, never blocking
    longer; the bytes sent."""
    sock.setblocking(False)
    sent = 0
    deadline = time.monotonic() + seconds
    try:
        while sent < len(data) and time.monotonic() < deadline:
            try:
                sent += sock.send(data[sent:sent + 65536])
            except BlockingIOError:
                time.sleep(0.005)
    except (BrokenPipeError, ConnectionResetError):
        pass
    sock.setblocking(True)
    return sent
