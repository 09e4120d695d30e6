"""A simulator and ``infermeter serve --workers N`` as child processes, and load to send them."""

from __future__ import annotations

import asyncio
import contextlib
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx
import psutil

from tests.support.metrics import Scrape, scrape
from tests.support.servers import ChildProcess, free_port
from tests.support.wait import wait_for

DEADLINE = 30.0


@contextlib.contextmanager
def simulator(*flags: str) -> Iterator[ChildProcess]:
    port = free_port()
    with ChildProcess(["simulate", "--port", str(port), "--log-level", "warning", *flags], port,
                      ready_path="/health") as sim:
        yield sim


@contextlib.contextmanager
def workers_proxy(upstream: str, workers: int, *flags: str, ready_path: str = "/healthz",
                  log: Path | None = None, env: dict[str, str] | None = None) -> Iterator[ChildProcess]:
    port = free_port()
    args = ["serve", "--upstream", upstream, "--port", str(port), "--workers", str(workers), "--collectors", "system",
            "--sample-interval", "0.2", "--log-level", "warning", *flags]
    with ChildProcess(args, port, ready_path=ready_path, log=log, env=env) as proxy:
        wait_for(lambda: len(listening(proxy)) == workers, "every worker listening", DEADLINE)
        yield proxy


def listening(proxy: ChildProcess) -> set[int]:
    """Workers holding a listening socket on the proxy's port: their slot's (SO_REUSEPORT),
    from the moment they start; connections wait in it until the worker serves."""
    out = set()
    for pid in worker_pids(proxy):
        with contextlib.suppress(psutil.Error):
            if any(c.status == psutil.CONN_LISTEN and c.laddr.port == proxy.port
                   for c in psutil.Process(pid).net_connections(kind="tcp")):
                out.add(pid)
    return out


def worker_pids(proxy: ChildProcess) -> set[int]:
    children = psutil.Process(proxy.pid).children()
    return {c.pid for c in children if "spawn_main" in " ".join(_cmdline(c))}


def _cmdline(p: psutil.Process) -> list[str]:
    with contextlib.suppress(psutil.Error):
        return p.cmdline()
    return []


def settled(url: str, check: Callable[[Scrape], bool], what: str, **kwargs: Any) -> Scrape:
    """The first scrape for which ``check`` holds (a loaded worker may answer a scrape late)."""
    last: list[Scrape] = []

    def ok() -> bool:
        last[:] = [scrape(url, **kwargs)]
        return check(last[0])

    wait_for(ok, what, DEADLINE)
    return last[0]


@dataclass
class Sent:
    counts: dict[tuple[str, str], int] = field(default_factory=dict)
    failed: list[tuple[float, float, str]] = field(default_factory=list)  # (start, end, what)
    ok: list[tuple[float, float]] = field(default_factory=list)

    def add(self, endpoint: str, outcome: str) -> None:
        self.counts[endpoint, outcome] = self.counts.get((endpoint, outcome), 0) + 1


CHAT = {"model": "m", "messages": [{"role": "user", "content": "hi"}], "stream": True}


async def _one(client: httpx.AsyncClient, kind: str, sent: Sent, request_id: str) -> None:
    started = time.monotonic()
    headers = {"x-request-id": request_id}
    try:
        if kind == "chat":
            async with client.stream("POST", "/v1/chat/completions", json=CHAT, headers=headers) as r:
                r.raise_for_status()
                await r.aread()
            sent.add("chat_completions", "completed")
        elif kind == "cancel":
            async with client.stream("POST", "/v1/chat/completions", json=CHAT, headers=headers) as r:
                r.raise_for_status()
                async for _ in r.aiter_raw():
                    break  # hang up after the first chunk: the relay records it cancelled
            sent.add("chat_completions", "cancelled")
        elif kind == "completion":
            (await client.post("/v1/completions", json={"model": "m", "prompt": "x"}, headers=headers)).raise_for_status()
            sent.add("completions", "completed")
        elif kind == "embedding":
            (await client.post("/v1/embeddings", json={"model": "m", "input": "x"}, headers=headers)).raise_for_status()
            sent.add("embeddings", "completed")
        else:
            (await client.get("/v1/models", headers=headers)).raise_for_status()
            sent.add("other", "completed")
        sent.ok.append((started, time.monotonic()))
    except httpx.HTTPError as exc:
        sent.failed.append((started, time.monotonic(), f"{kind}: {exc!r}"))


KINDS = ("chat", "cancel", "completion", "embedding", "models")


async def mixed_load(url: str, rounds: int, concurrency: int, sent: Sent, kinds: tuple[str, ...] = KINDS) -> None:
    """``rounds`` of every kind, ``concurrency`` at a time, each on a new connection so
    the kernel spreads them over the workers."""
    limits = httpx.Limits(max_keepalive_connections=0, max_connections=concurrency)
    gate = asyncio.Semaphore(concurrency)
    async with httpx.AsyncClient(base_url=url, limits=limits, timeout=30) as client:

        async def one(i: int, kind: str) -> None:
            async with gate:
                await _one(client, kind, sent, f"req-{kind}-{i}")

        await asyncio.gather(*(one(i, kind) for i in range(rounds) for kind in kinds))
