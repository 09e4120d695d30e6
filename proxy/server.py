"""Running the ASGI apps under uvicorn with the settings the hot path needs.

What both runtimes use (``uvicorn_config``, ``SideServer``, ``run_loop``,
``configure_logging``) and ``serve``, the single-process runtime; the CLI picks it or the
supervisor of ``proxy.workers``, which uses the same pieces.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Awaitable, Callable, Iterator
from typing import Any, Literal

import uvicorn
from proxy.config import HeadLimits, Settings
from proxy.edge import edge_protocol

log = logging.getLogger("infermeter")

def hot_path_options(limits: HeadLimits) -> dict[str, Any]:
    """uvicorn options for the proxy's listener.

    The upstream's own Server and Date headers pass through; uvicorn adding its own would
    duplicate them. One access-log line per request costs more than the relay.
    X-Forwarded-For from the client is passed on, not believed: the peer address is the
    one we add. Request heads are bounded and get a deadline (``proxy.edge``).
    """
    return {"access_log": False, "server_header": False, "date_header": False, "proxy_headers": False,
            "http": edge_protocol(limits)}


HOT_PATH_OPTIONS = hot_path_options(HeadLimits())
# Connections the kernel holds for a listener before it accepts them (somaxconn caps it).
BACKLOG = 4096


def uvicorn_config(app: Any, host: str, port: int, log_level: str, lifespan: Literal["on", "off"] = "on",
                   limits: HeadLimits | None = None) -> uvicorn.Config:
    options = HOT_PATH_OPTIONS if limits is None else hot_path_options(limits)
    return uvicorn.Config(app, host=host, port=port, lifespan=lifespan, log_level=log_level.lower(), loop="auto",
                          backlog=BACKLOG, timeout_graceful_shutdown=5, **options)


class SideServer(uvicorn.Server):
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


def run_loop(config: uvicorn.Config, main: Callable[[], Awaitable[None]]) -> None:
    """Run ``main()`` to completion on a new event loop of the kind ``config`` asks for (uvloop)."""
    factory = config.get_loop_factory()
    loop = factory() if factory is not None else asyncio.new_event_loop()
    asyncio.set_event_loop(loop)
    try:
        loop.run_until_complete(main())
    finally:
        loop.close()


def configure_logging(level: str) -> None:
    logging.basicConfig(level=level.upper(), format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    # httpx (probe, fallback transport) logs every request at INFO, with its URL; httpcore
    # logs every response header at DEBUG, cookies and tokens included.
    for name in ("httpx", "httpcore"):
        logging.getLogger(name).setLevel(max(logging.WARNING, logging.getLogger().level))


def serve(settings: Settings) -> int:
    """One process: the relay and the proxy's own paths on ``--port`` (and ``--metrics-port``)."""
    from proxy.app import create_app

    configure_logging(settings.log_level)
    app = create_app(settings)
    main = uvicorn.Server(uvicorn_config(app, settings.host, settings.port, settings.log_level,
                                         limits=settings.head_limits))
    log.info("infermeter relaying http://%s:%d -> %s", settings.host, settings.port, settings.upstream)
    if settings.metrics_port is None:
        run_loop(main.config, main.serve)
        return 0
    side = SideServer(uvicorn_config(app.metrics_app, settings.host, settings.metrics_port, settings.log_level,
                                      lifespan="off", limits=settings.head_limits))
    run_loop(main.config, lambda: _serve_together(main, side))
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
    run_loop(server.config, server.serve)
    return 0
