"""Model residency (Ollama's cold loads) and the prompt cache, on a hand-driven clock."""

from __future__ import annotations

from proxy.simulator.residency import PromptCache, Residency


def test_a_model_loads_once_and_unloads_after_keep_alive() -> None:
    r = Residency(load_time=2.0, keep_alive=10.0)
    assert r.acquire("m", 0.0) == 2.0  # cold
    assert r.acquire("m", 0.5) == 1.5  # arrives mid-load: waits for the same load
    assert r.acquire("other", 0.5) == 2.0  # each model loads on its own
    r.release("m", 3.0)
    assert r.acquire("m", 12.9) == 0.0  # within 10 s of its last use: loaded
    r.release("m", 13.0)
    assert set(r.loaded(20.0)) == {"m"}
    assert r.acquire("m", 23.0) == 2.0  # idle for 10 s: unloaded, loads again


def test_no_load_time_means_always_loaded() -> None:
    r = Residency(load_time=0.0, keep_alive=10.0)
    assert r.acquire("m", 0.0) == 0.0
    assert r.loaded(0.0) == {}


def test_a_repeated_prompt_is_served_from_the_cache() -> None:
    cache = PromptCache(capacity=2)
    ask = {"messages": [{"role": "user", "content": "hi there"}], "temperature": 0.1}
    assert cache.lookup("m", ask, 2) == 0
    assert cache.lookup("m", {**ask, "temperature": 0.9}, 2) == 2  # sampling settings are not the prompt
    assert cache.lookup("n", ask, 2) == 0  # another model has its own cache entries
    assert cache.lookup("m", ask, 2) == 2  # used again: now the most recent
    cache.lookup("m", {"prompt": "x"}, 1)  # evicts the least recently used entry ("n")
    assert cache.lookup("m", ask, 2) == 2
    assert cache.lookup("n", ask, 2) == 0
