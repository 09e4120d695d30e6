"""10,000 model names and a thousand paths cannot grow the series count past the cap."""

from __future__ import annotations

import asyncio

import orjson
import pytest

from tests.support.metrics import scrape
from tests.support.servers import ChildProcess, free_port

MAX_MODELS = 16
NAMES = 10_000
PATHS = 1_000


async def _worker(port: int, requests: list[bytes], statuses: list[int]) -> None:
    reader, writer = await asyncio.open_connection("127.0.0.1", port)
    try:
        for request in requests:
            writer.write(request)
            head = await reader.readuntil(b"\r\n\r\n")
            statuses.append(int(head.split(b" ", 2)[1]))
            length = 0
            for line in head.split(b"\r\n"):
                if line.lower().startswith(b"content-length:"):
                    length = int(line.split(b":", 1)[1])
            await reader.readexactly(length)
    finally:
        writer.close()


async def _blast(port: int, requests: list[bytes], connections: int = 24) -> list[int]:
    statuses: list[int] = []
    shares = [requests[i::connections] for i in range(connections)]
    await asyncio.gather(*(_worker(port, share, statuses) for share in shares))
    return statuses


def _post(port: int, path: str, model: str) -> bytes:
    body = orjson.dumps({"model": model, "messages": [{"role": "user", "content": "x"}], "max_tokens": 1})
    return (f"POST {path} HTTP/1.1\r\nHost: 127.0.0.1:{port}\r\nContent-Type: application/json\r\n"
            f"Content-Length: {len(body)}\r\n\r\n").encode() + body


@pytest.mark.timeout(110)
def test_ten_thousand_models_and_random_paths_stay_bounded() -> None:
    sim_port, port = free_port(), free_port()
    with ChildProcess(["simulate", "--port", str(sim_port), "--ttft", "0", "--tbt", "0", "--output-tokens", "1",
                       "--log-level", "warning"], sim_port, ready_path="/health"), \
         ChildProcess(["serve", "--upstream", f"http://127.0.0.1:{sim_port}", "--port", str(port),
                       "--max-models", str(MAX_MODELS), "--collectors", "none", "--log-level", "warning"], port) as proxy:
        requests = [_post(port, "/v1/chat/completions", f"tenant-model-{i:05d}") for i in range(NAMES)]
        requests += [_post(port, f"/v1/secret-path-{i}/x?user=u{i}", f"path-model-{i}") for i in range(PATHS)]
        statuses = asyncio.run(_blast(port, requests))
        m = scrape(proxy.url)
    assert len(statuses) == NAMES + PATHS
    assert statuses.count(200) == NAMES and statuses.count(404) == PATHS
    # "unknown" (requests that name no model, here the unparsed "other" endpoint) is one
    # fixed value; every value that came from a client is among the first MAX_MODELS or "other".
    models = {labels["model"] for name in m.names() for labels in m.series(name) if "model" in labels} - {"unknown"}
    assert len(models) == MAX_MODELS + 1
    assert "other" in models
    assert m.get("infermeter_requests_total", endpoint="chat_completions", code="200") == NAMES
    assert m.get("infermeter_requests_total", endpoint="other", code="404") == PATHS
    # Paths, query strings and the names past the cap never become label values.
    assert "secret-path" not in m.text and "user=" not in m.text
    assert "tenant-model-09999" not in m.text and "path-model" not in m.text
    series = len(m.series("infermeter_requests_total"))
    assert series <= MAX_MODELS + 2
