"""The simulated LLM server as a raw ASGI app: routing, lifespan, the catalog pages.

Raw ASGI rather than a framework: the simulator is the benchmark target, and every
microsecond it spends per token is one the proxy's measurements must see through.
"""

from __future__ import annotations

import gc
import hashlib
import time
from collections.abc import Callable
from datetime import datetime, timezone
from typing import Any

import orjson

from proxy.simulator.config import SimConfig
from proxy.simulator.engine import Engine
from proxy.simulator.engine_metrics import CONTENT_TYPE as METRICS_CONTENT_TYPE
from proxy.simulator.errors import error_body
from proxy.simulator.http import Receive, Send, send_json
from proxy.simulator.routes import ROUTES
from proxy.simulator.stats import SimStats

OLLAMA_VERSION = "0.6.0"
# Ollama keeps a model loaded this long after its last request (its default keep_alive).
KEEP_ALIVE = 300.0
# What /api/ps reports the simulated model to occupy, all of it in (simulated) VRAM.
MODEL_BYTES = 1_325_000_000


class GcPolicy:
    """Keep the cyclic garbage collector from pausing every stream at once.

    A full (generation 2) collection walks every tracked object: with the SDKs, uvicorn
    and the proxy imported that is ~230,000, and it paused the loop for 140-310 ms here
    (a peer saw 57-222 ms that set every p99). After start-up we collect once and
    ``gc.freeze()`` what is alive: it moves to a permanent generation no collection walks
    again, so the full collections disappear and the young ones walk only what requests
    created. Measured with 100 streams, frozen: generation 0 at the default threshold
    (700) costs about 0.3 ms of CPU per collection and generation 1 about 2-3 ms, while
    raising the threshold only makes each pause longer (5,000: 3-4 ms, 27 ms for gen 1;
    50,000: 7-38 ms) for no less total work, so the thresholds stay as they are. The
    collector stays enabled: asyncio makes reference cycles (futures, tasks, tracebacks)
    only it frees, and a simulator run for hours must not grow without bound. Shutdown
    unfreezes, so a test process that ran the simulator in a thread is left as it was.
    """

    def __init__(self) -> None:
        self.frozen = False

    def apply(self) -> None:
        if self.frozen:
            return
        gc.collect()
        gc.freeze()
        self.frozen = True

    def restore(self) -> None:
        if self.frozen:
            gc.unfreeze()
            self.frozen = False


class SimulatorApp:
    """The ASGI callable. ``stats`` counts model requests; ``config`` is what it runs with."""

    def __init__(self, config: SimConfig) -> None:
        self.config = config
        self.stats = SimStats()
        self.engine = Engine(config, self.stats)
        self.gc_policy = GcPolicy()
        self._started = int(time.time())
        self._pages: dict[str, Callable[[], dict[str, Any]]] = {
            "/health": lambda: {"status": "ok"},
            "/sim/stats": self.stats.as_dict,
            "/v1/models": self._models,
            "/api/tags": self._tags,
            "/api/version": lambda: {"version": OLLAMA_VERSION},
            "/api/ps": self._ps,
        }
        self._last_use: float | None = None

    async def __call__(self, scope: dict[str, Any], receive: Receive, send: Send) -> None:
        kind = scope["type"]
        if kind == "http":
            await self._http(scope, receive, send)
        elif kind == "lifespan":
            await self._lifespan(receive, send)

    async def _http(self, scope: dict[str, Any], receive: Receive, send: Send) -> None:
        path: str = scope["path"]
        method: str = scope["method"]
        endpoint = ROUTES.get(path)
        if endpoint is not None:
            if method != "POST":
                await _error(send, 405, f"{path} accepts POST only", endpoint.family)
                return
            self._last_use = time.time()
            await self.engine.handle(endpoint, scope, receive, send)
            return
        if path == "/metrics" and method in ("GET", "HEAD"):
            body = self.engine.metrics.render()
            await send({"type": "http.response.start", "status": 200, "headers": [
                (b"content-type", METRICS_CONTENT_TYPE), (b"content-length", str(len(body)).encode())]})
            await send({"type": "http.response.body", "body": body})
            return
        page = self._pages.get(path)
        if page is None:
            await _error(send, 404, f"no such path: {path}", "openai")
        elif method not in ("GET", "HEAD"):
            await _error(send, 405, f"{path} accepts GET only", "openai")
        else:
            await send_json(send, 200, orjson.dumps(page()))

    async def _lifespan(self, receive: Receive, send: Send) -> None:
        while True:
            message = await receive()
            if message["type"] == "lifespan.startup":
                if self.config.gc_freeze:
                    self.gc_policy.apply()
                await send({"type": "lifespan.startup.complete"})
            elif message["type"] == "lifespan.shutdown":
                self.gc_policy.restore()
                await send({"type": "lifespan.shutdown.complete"})
                return

    def _models(self) -> dict[str, Any]:
        return {"object": "list", "data": [{"id": self.config.model, "object": "model", "created": self._started,
                                            "owned_by": "infermeter"}]}

    def _ps(self) -> dict[str, Any]:
        """Ollama's running models: the model is loaded by its first request and unloaded
        KEEP_ALIVE seconds after its last, as Ollama does."""
        if self._last_use is None or time.time() > self._last_use + KEEP_ALIVE:
            return {"models": []}
        model = self.config.model
        expires = datetime.fromtimestamp(self._last_use + KEEP_ALIVE, timezone.utc).isoformat()
        return {"models": [{
            "name": model, "model": model, "size": MODEL_BYTES, "size_vram": MODEL_BYTES,
            "digest": hashlib.sha256(model.encode()).hexdigest(), "expires_at": expires, "context_length": 4096,
            "details": {"parent_model": "", "format": "gguf", "family": "infermeter", "families": ["infermeter"],
                        "parameter_size": "0B", "quantization_level": "F16"},
        }]}

    def _tags(self) -> dict[str, Any]:
        model = self.config.model
        return {"models": [{
            "name": model, "model": model,
            "modified_at": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(self._started)),
            "size": 0, "digest": hashlib.sha256(model.encode()).hexdigest(),
            "details": {"parent_model": "", "format": "gguf", "family": "infermeter", "families": ["infermeter"],
                        "parameter_size": "0B", "quantization_level": "F16"},
        }]}


async def _error(send: Send, status: int, message: str, family: str) -> None:
    await send_json(send, status, error_body(family, status, message))


def create_app(config: SimConfig | None = None) -> SimulatorApp:
    """The simulated LLM server for ``config`` (defaults when None), ready for uvicorn."""
    return SimulatorApp(config if config is not None else SimConfig())
