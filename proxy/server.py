"""Running the ASGI apps under uvicorn with the settings the hot path needs."""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Iterator
from typing import Any, Literal

import uvicorn
from uvicorn.protocols.http.httptools_impl import HttpToolsProtocol

from proxy.config import Settings

log = logging.getLogger("infermeter")

# nginx's client_header_timeout is 60 s; a request head is a few hundred bytes.
HEADER_TIMEOUT_S = 30.0
_REQUEST_TIMEOUT = (b"HTTP/1.1 408 Request Timeout\r\ncontent-type: text/plain; charset=utf-8\r\n"
                    b"content-length: 29\r\nconnection: close\r\n\r\nrequest headers took too long")


def header_timeout_protocol(seconds: float) -> type[HttpToolsProtocol]:
    """uvicorn's httptools protocol, but a request's headers must arrive within ``seconds``.

    uvicorn times only idle keep-alive connections: a client that opens a connection and
    sends its headers a byte at a time (slowloris) holds a socket for ever, and enough
    of them exhaust the proxy's file descriptors. The clock starts when the connection
    opens or a request's first byte arrives and stops when its headers are complete;
    on expiry the client gets a 408 and the connection closes.
    """

    class HeaderTimeoutProtocol(HttpToolsProtocol):
        _head_timer: asyncio.TimerHandle | None = None

        def connection_made(self, transport: asyncio.Transport) -> None:  # type: ignore[override]
            super().connection_made(transport)
            self._arm_head_timer()

        def connection_lost(self, exc: Exception | None) -> None:
            self._disarm_head_timer()
            super().connection_lost(exc)

        def on_message_begin(self) -> None:
            super().on_message_begin()
            self._arm_head_timer()

        def on_headers_complete(self) -> None:
            self._disarm_head_timer()
            super().on_headers_complete()

        def _arm_head_timer(self) -> None:
            if self._head_timer is None:
                self._head_timer = self.loop.call_later(seconds, self._head_timed_out)

        def _disarm_head_timer(self) -> None:
            if self._head_timer is not None:
                self._head_timer.cancel()
                self._head_timer = None

        def _head_timed_out(self) -> None:
            self._head_timer = None
            if self.transport.is_closing():
                return
            if self.cycle is not None and not self.cycle.response_complete:
                # A pipelined head behind a response still streaming: its turn has not come.
                self._arm_head_timer()
                return
            self.transport.write(_REQUEST_TIMEOUT)
            self.transport.close()

    return HeaderTimeoutProtocol


# The upstream's own Server and Date headers pass through; uvicorn adding its own would
# duplicate them. One access-log line per request costs more than the relay. X-Forwarded-For
# from the client is passed on, not believed: the peer address is the one we add. Request
# heads get a deadline (slowloris).
HOT_PATH_OPTIONS: dict[str, Any] = {
    "access_log": False, "server_header": False, "date_header": False, "proxy_headers": False,
    "http": header_timeout_protocol(HEADER_TIMEOUT_S),
}


def uvicorn_config(app: Any, host: str, port: int, log_level: str, lifespan: Literal["on", "off"] = "on") -> uvicorn.Config:
    return uvicorn.Config(app, host=host, port=port, lifespan=lifespan, log_level=log_level.lower(), loop="auto",
                          backlog=4096, timeout_graceful_shutdown=5, **HOT_PATH_OPTIONS)


class _SideServer(uvicorn.Server):
    """A second listener in the same loop; the main server owns the signal handlers."""

    @contextlib.contextmanager
    def capture_signals(self) -> Iterator[None]:
        yield


async def _serve_together(main: uvicorn.Server, side: uvicorn.Server) -> None:
    side_task = asyncio.ensure_future(side.serve())
    try:
        await main.serve()
    finally:
        side.should_exit = True
        await side_task


def _run(config: uvicorn.Config, coro_factory: Any) -> None:
    factory = config.get_loop_factory()
    loop = factory() if factory is not None else asyncio.new_event_loop()
    asyncio.set_event_loop(loop)
    try:
        loop.run_until_complete(coro_factory())
    finally:
        loop.close()


def configure_logging(level: str) -> None:
    logging.basicConfig(level=level.upper(), format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    # httpx (probe, fallback transport) logs every request at INFO, with its URL.
    logging.getLogger("httpx").setLevel(max(logging.WARNING, logging.getLogger().level))


def serve(settings: Settings) -> int:
    from proxy.app import create_app

    configure_logging(settings.log_level)
    app = create_app(settings)
    main = uvicorn.Server(uvicorn_config(app, settings.host, settings.port, settings.log_level))
    log.info("infermeter relaying http://%s:%d -> %s", settings.host, settings.port, settings.upstream)
    if settings.metrics_port is None:
        _run(main.config, main.serve)
        return 0
    side = _SideServer(uvicorn_config(app.metrics_app, settings.host, settings.metrics_port, settings.log_level,
                                      lifespan="off"))
    _run(main.config, lambda: _serve_together(main, side))
    return 0


def simulate(values: dict[str, Any]) -> int:
    from proxy.simulator.app import create_app
    from proxy.simulator.config import SimConfig

    host, port, level = values.pop("host"), values.pop("port"), values.pop("log_level")
    configure_logging(level)
    config = SimConfig(**values)
    server = uvicorn.Server(uvicorn_config(create_app(config), host, port, level))
    log.info("simulated LLM server on http://%s:%d (ttft %.3fs, tbt %.3fs, %d tokens)",
             host, port, config.ttft, config.tbt, config.output_tokens)
    _run(server.config, server.serve)
    return 0
