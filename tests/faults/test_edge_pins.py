"""The uvicorn internals the edge (proxy/edge/protocol.py) stands on, pinned.

The edge subclasses uvicorn's httptools protocol: it replaces ``data_received`` with a
copy of its own, overrides the parser callbacks, calls two private methods and reads
the per-connection and per-request state. None of that is uvicorn's public API, so a
release may move any of it; pyproject bounds uvicorn to the versions tested, and these
tests fail loudly, naming the hook, when an upgrade moves one. When one fails, read
uvicorn's new code for that hook, adapt the edge, then update the pin here.
"""

from __future__ import annotations

import asyncio
import hashlib
import inspect
from typing import Any, ClassVar

import httptools
import pytest
from uvicorn.protocols.http.httptools_impl import HttpToolsProtocol, RequestResponseCycle

from proxy.config import HeadLimits
from proxy.edge import EdgeProtocol
from proxy.server import hot_path_options
from tests.faults.rawclient import connect, read_response, status_of
from tests.support.servers import ThreadServer

# uvicorn's methods whose bodies the edge copies or whose exact behaviour it builds on,
# with the sha256 (first 16 hex digits) of their source in uvicorn 0.50-0.55:
SOURCES = {
    # copied into EdgeProtocol (data_received, _feed, _parse_failed), less the keep-alive
    # reset that made a bare CRLF keep a connection open
    "data_received": "010a7ae59a5d3b1a",
    # the edge calls it before it parses held pipelined bytes: it must arm the keep-alive
    # timer and start a queued cycle, nothing more
    "on_response_complete": "64e254f28e389e76",
    # a body arriving after the response is complete must be dropped, not buffered
    "on_body": "dba9c32aeba35b6a",
    "on_message_complete": "1fbad42dc31fc01f",
}

# Methods the edge calls or overrides, with the signatures it calls them with.
SIGNATURES = {
    "_should_upgrade": "(self) -> 'bool'",
    "_unsupported_upgrade_warning": "(self) -> 'None'",
    "handle_websocket_upgrade": "(self) -> 'None'",
    "send_400_response": "(self, msg: 'str') -> 'None'",
    "on_message_begin": "(self) -> 'None'",
    "on_url": "(self, url: 'bytes') -> 'None'",
    "on_headers_complete": "(self) -> 'None'",
    "on_body": "(self, body: 'bytes') -> 'None'",
    "on_message_complete": "(self) -> 'None'",
    "on_response_complete": "(self) -> 'None'",
    "connection_made": "(self, transport: 'asyncio.Transport') -> 'None'",
    "connection_lost": "(self, exc: 'Exception | None') -> 'None'",
}


@pytest.mark.parametrize("name", sorted(SOURCES))
def test_the_uvicorn_code_the_edge_builds_on_is_unchanged(name: str) -> None:
    source = inspect.getsource(getattr(HttpToolsProtocol, name))
    digest = hashlib.sha256(source.encode()).hexdigest()[:16]
    assert digest == SOURCES[name], f"uvicorn changed HttpToolsProtocol.{name}: check proxy/edge/protocol.py"


@pytest.mark.parametrize("name", sorted(SIGNATURES))
def test_each_uvicorn_method_the_edge_uses_has_its_signature(name: str) -> None:
    method = getattr(HttpToolsProtocol, name, None)
    assert method is not None, f"uvicorn's HttpToolsProtocol has no {name} any more"
    assert str(inspect.signature(method)) == SIGNATURES[name]


def test_a_cycle_calls_its_on_response_hook_when_its_response_is_done() -> None:
    # The edge hooks a busy cycle's on_response to parse the requests held behind it.
    send = inspect.getsource(RequestResponseCycle.send)
    assert "self.response_complete = True" in send and "self.on_response()" in send
    assert send.index("self.response_complete = True") < send.index("self.on_response()")
    assert "on_response" in inspect.signature(RequestResponseCycle.__init__).parameters


def test_the_edge_overrides_what_it_means_to() -> None:
    for name in ("data_received", "on_message_begin", "on_url", "on_headers_complete", "on_body",
                 "on_message_complete", "connection_made", "connection_lost"):
        assert name in vars(EdgeProtocol), name
    assert "data_received" in vars(HttpToolsProtocol)  # the method the edge replaces exists


class _Seen(EdgeProtocol):
    """The edge, remembering its connections so the test can read their state."""

    seen: ClassVar[list[EdgeProtocol]] = []

    def connection_made(self, transport: asyncio.Transport) -> None:  # type: ignore[override]
        type(self).seen.append(self)
        super().connection_made(transport)


async def _ok(scope: dict[str, Any], receive: Any, send: Any) -> None:
    await send({"type": "http.response.start", "status": 200, "headers": [(b"content-length", b"2")]})
    await send({"type": "http.response.body", "body": b"ok"})


def test_the_state_the_edge_reads_is_where_it_looks() -> None:
    options = {**hot_path_options(HeadLimits()), "http": _Seen}
    with ThreadServer(_ok, lifespan="off", **options) as server:
        with connect(server.port) as sock:
            sock.sendall(b"GET /pinned HTTP/1.1\r\nHost: x\r\nX-A: b\r\n\r\n")
            assert status_of(read_response(sock)) == 200
            (protocol,) = _Seen.seen
            assert isinstance(protocol.parser, httptools.HttpRequestParser)
            assert isinstance(protocol.loop, asyncio.AbstractEventLoop)
            for name in ("write", "close", "is_closing", "pause_reading", "resume_reading"):  # uvloop's too
                assert callable(getattr(protocol.transport, name))
            assert protocol.url == b"/pinned"
            assert protocol.headers == [(b"host", b"x"), (b"x-a", b"b")]
            assert protocol.scope["headers"] == protocol.headers
            cycle = protocol.cycle
            assert isinstance(cycle, RequestResponseCycle)
            assert cycle.response_started is True and cycle.response_complete is True
            # armed once the response is done, and what the edge cancels when a request begins
            assert protocol.timeout_keep_alive_task is not None
            assert callable(protocol.timeout_keep_alive_task.cancel)
    _Seen.seen.clear()
