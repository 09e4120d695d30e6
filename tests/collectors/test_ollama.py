"""The ollama collector: the simulator's real /api/ps over sockets, then a proxy using it."""

from __future__ import annotations

import gc
import time
import tracemalloc
from collections.abc import Awaitable, Callable, Iterator, MutableMapping
from datetime import datetime
from pathlib import Path
from typing import Any

import httpx
import orjson
import psutil
import pytest

from proxy.collectors.ollama import MAX_ANSWER, MAX_MODEL_BYTES, OllamaCollector, HttpFetch
from proxy.simulator import SimConfig, create_app
from proxy.simulator.app import KEEP_ALIVE, MODEL_BYTES
from tests.support.metrics import Scrape, scrape
from tests.support.servers import ChildProcess, ThreadServer, free_port
from tests.support.wait import poll

MODEL = "infermeter-sim"


@pytest.fixture()
def sim() -> Iterator[ThreadServer]:
    with ThreadServer(create_app(SimConfig(ttft=0.0, tbt=0.0, output_tokens=2, gc_freeze=False))) as server:
        yield server


def chat(url: str, model: str = MODEL) -> None:
    body = {"model": model, "messages": [{"role": "user", "content": "hi"}], "stream": False}
    assert httpx.post(url + "/api/chat", json=body, timeout=10).status_code == 200


def test_simulator_answers_api_ps_like_ollama(sim: ThreadServer) -> None:
    assert httpx.get(sim.url + "/api/ps", timeout=5).json() == {"models": []}, "nothing is loaded before a request"
    before = time.time()
    chat(sim.url)
    (model,) = httpx.get(sim.url + "/api/ps", timeout=5).json()["models"]
    assert model["name"] == model["model"] == MODEL
    assert model["size"] == model["size_vram"] == MODEL_BYTES
    expires = datetime.fromisoformat(model["expires_at"]).timestamp()
    assert before + KEEP_ALIVE <= expires <= time.time() + KEEP_ALIVE
    assert {"format", "family", "parameter_size", "quantization_level"} <= set(model["details"])


def test_collector_reads_loaded_models_over_http(sim: ThreadServer) -> None:
    collector = OllamaCollector(HttpFetch(sim.url, timeout=2.0), refresh=0.0)
    assert not Scrape(collector.sample().families).samples, "no model loaded yet: no series"
    chat(sim.url)
    started = time.time()
    values = Scrape(collector.sample().families)
    assert values.value("infermeter_ollama_model_loaded", model=MODEL) == 1
    assert values.value("infermeter_ollama_model_memory_bytes", kind="total", model=MODEL) == MODEL_BYTES
    assert values.value("infermeter_ollama_model_memory_bytes", kind="vram", model=MODEL) == MODEL_BYTES
    assert abs(values.get("infermeter_ollama_model_expires_at_seconds", model=MODEL) - (started + KEEP_ALIVE)) < 2
    collector.close()


class Scripted:
    """A scripted /api/ps: answers in turn, counting the reads."""

    def __init__(self, *answers: tuple[int, Any]) -> None:
        self.answers = list(answers)
        self.reads = 0

    def __call__(self) -> tuple[int, bytes]:
        self.reads += 1
        status, body = self.answers.pop(0) if len(self.answers) > 1 else self.answers[0]
        return status, orjson.dumps(body)


def ps(*models: dict[str, Any]) -> tuple[int, Any]:
    return 200, {"models": list(models)}


def test_a_server_without_api_ps_leaves_the_collector_idle_and_healthy() -> None:
    now = [0.0]
    fetch = Scripted((404, {"error": "not found"}))
    collector = OllamaCollector(fetch, refresh=1.0, recheck=60.0, clock=lambda: now[0])
    for _ in range(5):
        sample = collector.sample()
        assert sample.ok and sample.families == ()
        now[0] += 1.0
    assert fetch.reads == 1, "a server that is not Ollama is asked again only after recheck"
    now[0] = 61.0
    collector.sample()
    assert fetch.reads == 2


def test_reads_are_spaced_by_refresh_and_failures_raise() -> None:
    now = [0.0]
    first = {"name": "llama3.2:1b", "size": 2_000, "size_vram": 1_500, "expires_at": "2024-06-04T14:38:31.837530123-07:00"}
    fetch = Scripted(ps(first), (500, {"error": "boom"}))
    collector = OllamaCollector(fetch, refresh=5.0, clock=lambda: now[0])
    values = Scrape(collector.sample().families)
    assert values.value("infermeter_ollama_model_expires_at_seconds", model="llama3.2:1b") == pytest.approx(
        1717537111.83753)
    assert values.value("infermeter_ollama_model_memory_bytes", kind="vram", model="llama3.2:1b") == 1500
    now[0] = 4.0
    assert Scrape(collector.sample().families).samples == values.samples and fetch.reads == 1
    now[0] = 5.0
    with pytest.raises(RuntimeError, match="500"):
        collector.sample()


def test_model_label_is_capped_like_max_models() -> None:
    models = [{"name": f"m{i}", "size": i} for i in range(4)] + [{"name": "m0", "size": 0}]
    values = Scrape(OllamaCollector(Scripted(ps(*models)), max_models=2, refresh=0.0).sample().families)
    loaded = sorted(labels["model"] for labels in values.series("infermeter_ollama_model_loaded"))
    assert loaded == ["m0", "m1", "other"]


def test_zero_or_bad_expiry_is_left_out() -> None:
    fetch = Scripted(ps({"name": "a", "expires_at": "0001-01-01T00:00:00Z"}, {"name": "b", "expires_at": "soon"}))
    values = Scrape(OllamaCollector(fetch, refresh=0.0).sample().families)
    assert not values.has("infermeter_ollama_model_expires_at_seconds")
    assert values.value("infermeter_ollama_model_loaded", model="a") == 1


def test_proxy_exports_the_models_of_an_ollama_upstream(sim: ThreadServer) -> None:
    port = free_port()
    args = ["serve", "--upstream", sim.url, "--port", str(port), "--collectors", "ollama",
            "--sample-interval", "0.1", "--probe-interval", "0.2", "--log-level", "warning"]
    with ChildProcess(args, port) as proxy:
        chat(proxy.url)  # through the proxy: the simulator loads its model
        found = poll(lambda: scrape(proxy.url), lambda m: m.has("infermeter_ollama_model_loaded"), step=0.1)
    assert found.value("infermeter_ollama_model_loaded", model=MODEL) == 1
    assert found.value("infermeter_collector_success", collector="ollama") == 1


def test_impossible_memory_sizes_are_left_out_and_reported() -> None:
    models = ({"name": "neg", "size": -5, "size_vram": 0}, {"name": "huge", "size": 1e308, "size_vram": MAX_MODEL_BYTES},
              {"name": "ok", "size": 2_000, "size_vram": 1_500})
    sample = OllamaCollector(Scripted(ps(*models)), refresh=0.0).sample()
    values = Scrape(sample.families)
    memory = {(labels["model"], labels["kind"]) for labels in values.series("infermeter_ollama_model_memory_bytes")}
    assert memory == {("neg", "vram"), ("huge", "vram"), ("ok", "total"), ("ok", "vram")}
    assert values.value("infermeter_ollama_model_memory_bytes", model="huge", kind="vram") == MAX_MODEL_BYTES
    assert sorted(labels["model"] for labels in values.series("infermeter_ollama_model_loaded")) == ["huge", "neg", "ok"]
    # A partial read: what could be read is exported, the failure is reported (success 0, one log line).
    assert not sample.ok and sample.error is not None
    assert "neg size=-5" in sample.error and "huge size=1e+308" in sample.error
    assert OllamaCollector(Scripted(ps(models[2])), refresh=0.0).sample().ok


Receive = Callable[[], Awaitable[MutableMapping[str, Any]]]
Send = Callable[[MutableMapping[str, Any]], Awaitable[None]]
BLOCK = b"x" * (1 << 20)


class PsUpstream:
    """An Ollama-looking upstream: while ``huge_mib`` is set, /api/ps answers that many MiB
    of valid JSON (chunked, or with its Content-Length when ``declare``); else one model."""

    def __init__(self, huge_mib: int, declare: bool = False) -> None:
        self.huge_mib = huge_mib
        self.declare = declare
        self.reads = 0

    async def __call__(self, scope: MutableMapping[str, Any], receive: Receive, send: Send) -> None:
        assert scope["type"] == "http" and scope["path"] == "/api/ps"
        self.reads += 1
        huge = self.huge_mib
        if not huge:
            body = orjson.dumps({"models": [{"name": "llama3.2:1b", "size": 2_000, "size_vram": 1_500}]})
            await send({"type": "http.response.start", "status": 200, "headers": [(b"content-type", b"application/json")]})
            await send({"type": "http.response.body", "body": body})
            return
        head, tail = b'{"models":[],"pad":"', b'"}'
        headers = [(b"content-type", b"application/json")]
        if self.declare:
            headers.append((b"content-length", str(len(head) + huge * len(BLOCK) + len(tail)).encode()))
        await send({"type": "http.response.start", "status": 200, "headers": headers})
        await send({"type": "http.response.body", "body": head, "more_body": True})
        for _ in range(huge):  # one shared block: the upstream itself allocates nothing per MiB
            await send({"type": "http.response.body", "body": BLOCK, "more_body": True})
        await send({"type": "http.response.body", "body": tail})


@pytest.mark.parametrize("declare", [False, True], ids=["chunked", "content-length"])
def test_a_huge_answer_is_cut_off_and_nothing_of_it_stays_alive(declare: bool) -> None:
    reads = 4
    with ThreadServer(PsUpstream(48, declare), lifespan="off") as upstream:
        fetch = HttpFetch(upstream.url, timeout=10.0)
        collector = OllamaCollector(fetch, refresh=0.0)
        # With the cyclic GC off, anything kept alive by a reference cycle (an httpx
        # response holding its body) would pile up here, as it did between collections.
        gc.collect()
        gc.disable()
        tracemalloc.start()
        try:
            before = tracemalloc.get_traced_memory()[0]
            for _ in range(reads):
                with pytest.raises(ValueError, match=r"the 4 MiB read limit \(a real Ollama lists its loaded models"):
                    collector.sample()
            current, peak = tracemalloc.get_traced_memory()
        finally:
            tracemalloc.stop()
            gc.enable()
            collector.close()
    assert upstream.app.reads == reads
    assert peak - before < 3 * MAX_ANSWER, f"peak {(peak - before) / 2**20:.1f} MiB for a 48 MiB answer"
    assert current - before < MAX_ANSWER // 2, f"{(current - before) / 2**20:.1f} MiB still held after {reads} reads"


def test_proxy_survives_an_upstream_with_a_huge_api_ps(tmp_path: Path) -> None:
    # Issue 18: a 50 MB /api/ps every second took the proxy from 59 to 919 MiB of RSS.
    app = PsUpstream(64)
    with ThreadServer(app, lifespan="off") as upstream:
        port = free_port()
        args = ["serve", "--upstream", upstream.url, "--port", str(port), "--collectors", "ollama",
                "--sample-interval", "0.2", "--probe-interval", "0.2", "--log-level", "warning"]
        log = tmp_path / "proxy.log"
        with ChildProcess(args, port, log=log) as proxy:
            process = psutil.Process(proxy.pid)
            start = process.memory_info().rss
            rss = [start]

            def failed_reads() -> int:
                rss.append(process.memory_info().rss)
                return app.reads

            assert poll(failed_reads, lambda n: n >= 8, timeout=60, step=0.05) >= 8
            failing = scrape(proxy.url)
            app.huge_mib = 0
            found = poll(lambda: scrape(proxy.url), lambda m: m.has("infermeter_ollama_model_loaded"), timeout=20)
    grown = max(rss) - start
    assert grown < 40 * 2**20, f"RSS grew {grown / 2**20:.0f} MiB over 8 reads of a 64 MiB answer"
    assert failing.value("infermeter_collector_success", collector="ollama") == 0
    assert not failing.has("infermeter_ollama_model_loaded")
    lines = [line for line in log.read_text().splitlines() if "collector ollama failing" in line]
    assert len(lines) == 1, "one line per failure episode"
    assert "passed the 4 MiB read limit (a real Ollama lists its loaded models in a few KB)" in lines[0]
    # The collector kept going: the next sane answer is read and it is healthy again.
    assert found.value("infermeter_ollama_model_loaded", model="llama3.2:1b") == 1
    assert found.value("infermeter_ollama_model_memory_bytes", model="llama3.2:1b", kind="vram") == 1_500
    assert found.value("infermeter_collector_success", collector="ollama") == 1
