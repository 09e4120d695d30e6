"""The ollama collector: the simulator's real /api/ps over sockets, then a proxy using it."""

from __future__ import annotations

import time
from collections.abc import Iterator
from datetime import datetime
from typing import Any

import httpx
import orjson
import pytest

from proxy.collectors.ollama import OllamaCollector, HttpFetch
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
