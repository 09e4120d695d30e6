"""``infermeter load``: the demo's gentle mixed load (OpenAI chat and completions, streams
and not, with and without usage) against any proxy or server."""

from __future__ import annotations

import asyncio
import random

import httpx

from proxy.demo.signals import stop_on_sigterm, wait_for_stop

PROMPTS = ["Say hello.", "Write a haiku about latency.", "Explain TTFT in one sentence.", "List three GPUs."]


async def client_loop(client: httpx.AsyncClient, rng: random.Random, stop: asyncio.Event) -> None:
    while not stop.is_set():
        kind = rng.random()
        body: dict[str, object] = {"model": "demo-model", "max_tokens": rng.randint(8, 48)}
        if kind < 0.8:
            path = "/v1/chat/completions"
            body["messages"] = [{"role": "user", "content": rng.choice(PROMPTS)}]
        else:
            path = "/v1/completions"
            body["prompt"] = rng.choice(PROMPTS)
        body["stream"] = rng.random() < 0.85
        if body["stream"] and rng.random() < 0.5:
            body["stream_options"] = {"include_usage": True}
        try:
            async with client.stream("POST", path, json=body) as response:
                async for _ in response.aiter_raw():
                    pass
        except httpx.HTTPError:
            await asyncio.sleep(0.5)
        await asyncio.sleep(rng.uniform(0.0, 0.3))


async def run_load(target: str, concurrency: int, duration: float) -> int:
    """``infermeter load``: the demo's gentle mixed load against any proxy, so a fresh
    ``docker compose up`` has numbers on its dashboards without a client of one's own."""
    stop = asyncio.Event()
    with stop_on_sigterm(stop):
        async with httpx.AsyncClient(base_url=target.rstrip("/"), timeout=30,
                                     limits=httpx.Limits(max_connections=concurrency * 2)) as client:
            loops = [asyncio.ensure_future(client_loop(client, random.Random(i), stop)) for i in range(concurrency)]
            print(f"infermeter load: {concurrency} streams against {target} (Ctrl-C to stop)", flush=True)
            try:
                await wait_for_stop(stop, duration or None)
            finally:
                stop.set()
                for task in loops:
                    task.cancel()
                await asyncio.gather(*loops, return_exceptions=True)
    return 0
