"""engines.yml against the engines' own expositions, in a real Prometheus.

Each recorded exposition in fixtures/engines/ (vLLM 0.10 with two data-parallel engines,
vLLM 0.8 with the pre-rename names, SGLang, TGI, llama.cpp now and before its KV gauge went) is served over HTTP and
scraped every second, with the shipped rule files loaded. Gauges are served as recorded.
Counters and histograms are served multiplied by the number of scrapes so far, so each
rises by exactly its recorded value per scrape; a reference counter rising by 1 per
scrape gives, at the same evaluation time, the factor that ``rate()`` turns one scrape's
increase into. A normalized rate must then equal its recorded value times that factor.
"""

from __future__ import annotations

import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
import pytest

from tests.stack import exprs
from tests.stack.prometheus_server import Prometheus, run_prometheus
from tests.support.servers import ThreadServer
from tests.support.wait import poll

FIXTURES = Path(__file__).parent / "fixtures" / "engines"
REFERENCE = "fixture_scrapes_total"


def scaled(text: str, k: int) -> str:
    """The exposition with every counter and histogram sample multiplied by ``k``."""
    kinds: dict[str, str] = {}
    out: list[str] = []
    for line in text.splitlines():
        if line.startswith("# TYPE "):
            _, _, name, kind = line.split()
            kinds[name] = kind
        if line.startswith("#") or not line.strip():
            out.append(line)
            continue
        series, value = line.rsplit(" ", 1)
        name = series.split("{", 1)[0]
        family = max((f for f in kinds if name.startswith(f)), key=len, default="")
        if kinds.get(family) in ("counter", "histogram") and not name.endswith("_created"):
            value = repr(float(value) * k)
        out.append(f"{series} {value}")
    out += [f"# TYPE {REFERENCE} counter", f"{REFERENCE} {float(k)!r}"]
    return "\n".join(out) + "\n"


class ExpositionApp:
    """Serves one recorded exposition at /metrics, its counters growing per scrape."""

    def __init__(self, path: Path) -> None:
        self.text = path.read_text(encoding="utf-8")
        self.scrapes = 0

    async def __call__(self, scope: dict[str, Any], receive: Any, send: Any) -> None:
        if scope["type"] != "http":
            return
        if scope["path"] != "/metrics":
            await send({"type": "http.response.start", "status": 404, "headers": []})
            await send({"type": "http.response.body", "body": b""})
            return
        self.scrapes += 1
        body = scaled(self.text, self.scrapes).encode()
        await send({"type": "http.response.start", "status": 200,
                    "headers": [(b"content-type", b"text/plain; version=0.0.4")]})
        await send({"type": "http.response.body", "body": body})


def test_scaled_multiplies_counters_and_histograms_only() -> None:
    text = (FIXTURES / "vllm.prom").read_text(encoding="utf-8")
    twice = scaled(text, 2)
    assert 'vllm:num_requests_running{engine="0",model_name="meta-llama/Llama-3.1-8B-Instruct"} 5.0' in twice
    assert 'vllm:num_preemptions_total{engine="0",model_name="meta-llama/Llama-3.1-8B-Instruct"} 6.0' in twice
    assert 'vllm:num_preemptions_created{engine="0",model_name="meta-llama/Llama-3.1-8B-Instruct"} 1.7563e+09' in twice
    assert 'vllm:request_queue_time_seconds_sum{engine="1",model_name="meta-llama/Llama-3.1-8B-Instruct"} 9.0' in twice


@dataclass(frozen=True)
class Engines:
    prometheus: Prometheus
    instances: dict[str, str]  # fixture name -> instance label


@pytest.fixture(scope="module")
def engines(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Engines]:
    names = sorted(ENGINE_LABEL)
    servers = [ThreadServer(ExpositionApp(FIXTURES / f"{name}.prom")) for name in names]
    started: list[ThreadServer] = []
    try:
        for server in servers:
            started.append(server.__enter__())
        instances = {name: f"127.0.0.1:{server.port}" for name, server in zip(names, servers)}
        with run_prometheus(tmp_path_factory.mktemp("engines"), "engines", list(instances.values()),
                            exprs.RULE_FILES) as prometheus:
            yield Engines(prometheus, instances)
    finally:
        for server in started:
            server.__exit__(None, None, None)


# What each normalized series must be, per fixture: gauges as recorded, rates as the
# recorded increase per scrape (summed over ranks and label splits by hand, not by code).
GAUGES: dict[str, dict[str, float]] = {
    "vllm": {"engine:requests_running": 8, "engine:requests_waiting": 3, "engine:kv_cache_usage_ratio": 0.87},
    "vllm-0.8": {"engine:requests_running": 2, "engine:requests_waiting": 0, "engine:kv_cache_usage_ratio": 0.25},
    "sglang": {"engine:requests_running": 12, "engine:requests_waiting": 7, "engine:kv_cache_usage_ratio": 0.91},
    "tgi": {"engine:requests_running": 16, "engine:requests_waiting": 4},
    "llamacpp": {"engine:requests_running": 1, "engine:requests_waiting": 2},
    "llamacpp-old": {"engine:requests_running": 4, "engine:requests_waiting": 0, "engine:kv_cache_usage_ratio": 0.5},
}
RATES: dict[str, dict[str, float]] = {
    "vllm": {
        # The new and the deprecated spellings are both exported: counted once.
        "engine:prefix_cache_hits:rate5m": 8000, "engine:prefix_cache_queries:rate5m": 20000,
        "engine:preemptions:rate5m": 4,
        "engine:queue_time_seconds_count:rate5m": 80, "engine:queue_time_seconds_sum:rate5m": 7.6,
        'engine:queue_time_seconds_bucket:rate5m{le="0.3"}': 70,
        'engine:queue_time_seconds_bucket:rate5m{le="1.0"}': 79,
        "engine:time_to_first_token_seconds_count:rate5m": 80, "engine:time_to_first_token_seconds_sum:rate5m": 20.0,
        'engine:time_to_first_token_seconds_bucket:rate5m{le="0.25"}': 65,
    },
    "vllm-0.8": {
        "engine:prefix_cache_hits:rate5m": 250, "engine:prefix_cache_queries:rate5m": 1000,
        "engine:preemptions:rate5m": 0,
        "engine:queue_time_seconds_count:rate5m": 10, "engine:queue_time_seconds_sum:rate5m": 0.05,
        'engine:queue_time_seconds_bucket:rate5m{le="0.3"}': 10,
        "engine:time_to_first_token_seconds_count:rate5m": 10, "engine:time_to_first_token_seconds_sum:rate5m": 0.37,
        'engine:time_to_first_token_seconds_bucket:rate5m{le="0.04"}': 8,
    },
    "sglang": {
        # cache_source="device" and "host" summed.
        "engine:prefix_cache_hits:rate5m": 30000, "engine:prefix_cache_queries:rate5m": 50000,
        "engine:preemptions:rate5m": 9,
        "engine:queue_time_seconds_count:rate5m": 100, "engine:queue_time_seconds_sum:rate5m": 31.0,
        'engine:queue_time_seconds_bucket:rate5m{le="0.5"}': 80,
        "engine:time_to_first_token_seconds_count:rate5m": 100, "engine:time_to_first_token_seconds_sum:rate5m": 52.0,
        'engine:time_to_first_token_seconds_bucket:rate5m{le="0.4"}': 75,
    },
    "tgi": {
        "engine:queue_time_seconds_count:rate5m": 100, "engine:queue_time_seconds_sum:rate5m": 9.5,
        'engine:queue_time_seconds_bucket:rate5m{le="0.0129746337890625"}': 60,
        'engine:queue_time_seconds_bucket:rate5m{le="0.22168378200531003"}': 100,
    },
    "llamacpp": {
        # prompt_tokens_total excludes the cached ones there: a lookup is both.
        "engine:prefix_cache_hits:rate5m": 1000, "engine:prefix_cache_queries:rate5m": 4000,
    },
}
ENGINE_LABEL = {"vllm": "vllm", "vllm-0.8": "vllm", "sglang": "sglang", "tgi": "tgi", "llamacpp": "llamacpp",
                "llamacpp-old": "llamacpp"}
MODEL = {"vllm": "meta-llama/Llama-3.1-8B-Instruct", "vllm-0.8": "meta-llama/Llama-3.1-8B-Instruct",
         "sglang": "Qwen/Qwen2.5-7B-Instruct"}


def _name(key: str) -> str:
    return key.split("{", 1)[0]


def _selector(key: str, instance: str, fixture: str) -> str:
    name, _, rest = key.partition("{")
    extra = rest.rstrip("}")
    matchers = [f'instance="{instance}"', f'engine="{ENGINE_LABEL[fixture]}"'] + ([extra] if extra else [])
    return f"{name}{{{','.join(matchers)}}}"


def _present(engines: Engines) -> set[tuple[str, str]]:
    by_instance = {v: k for k, v in engines.instances.items()}
    response = httpx.post(f"{engines.prometheus.url}/api/v1/query",
                          data={"query": 'count by (__name__, instance) ({__name__=~"engine:.+"})'}, timeout=10)
    return {(sample["metric"]["__name__"], by_instance[sample["metric"]["instance"]])
            for sample in response.json()["data"]["result"]}


def _wanted() -> set[tuple[str, str]]:
    return {(_name(key), fixture) for table in (GAUGES, RATES) for fixture, series in table.items() for key in series}


def test_every_normalized_series_is_recorded_and_nothing_else(engines: Engines) -> None:
    present = poll(lambda: _present(engines), lambda p: p == _wanted(), 30, step=0.5)
    assert present == _wanted(), f"missing {sorted(_wanted() - present)}, unexpected {sorted(present - _wanted())}"


@pytest.mark.parametrize(("fixture", "key"), [(f, k) for f, s in GAUGES.items() for k in s])
def test_gauge_maps_to_its_recorded_value(engines: Engines, fixture: str, key: str) -> None:
    test_every_normalized_series_is_recorded_and_nothing_else(engines)
    selector = _selector(key, engines.instances[fixture], fixture)
    assert engines.prometheus.query(selector) == [pytest.approx(GAUGES[fixture][key], rel=1e-12)], selector


def _at(prometheus: Prometheus, expr: str, at: float) -> list[float]:
    response = httpx.post(f"{prometheus.url}/api/v1/query", data={"query": expr, "time": repr(at)}, timeout=10)
    return [float(s["value"][1]) for s in response.json()["data"]["result"]]


@pytest.mark.parametrize(("fixture", "key"), [(f, k) for f, s in RATES.items() for k in s])
def test_rate_maps_to_its_recorded_increase(engines: Engines, fixture: str, key: str) -> None:
    test_every_normalized_series_is_recorded_and_nothing_else(engines)
    instance = engines.instances[fixture]
    selector = _selector(key, instance, fixture)
    expected = RATES[fixture][key]
    seen: list[tuple[float, float]] = []
    # A scrape that lands during a rule evaluation may be seen by a later query but not
    # by the rule: such a pair is off for that one evaluation, so up to three are tried.
    for _ in range(3):
        (evaluated_at,) = engines.prometheus.query(f"timestamp({selector})")
        (value,) = _at(engines.prometheus, selector, evaluated_at)
        (per_scrape,) = _at(engines.prometheus, f'rate({REFERENCE}{{instance="{instance}"}}[5m])', evaluated_at)
        assert per_scrape > 0
        if value == pytest.approx(expected * per_scrape, rel=1e-9, abs=1e-12):
            return
        seen.append((value, expected * per_scrape))
        time.sleep(1.1)
    pytest.fail(f"{selector}: (recorded, expected) at three evaluations: {seen}")


def test_model_label_kept_where_the_engine_names_one(engines: Engines) -> None:
    test_every_normalized_series_is_recorded_and_nothing_else(engines)
    for fixture, instance in engines.instances.items():
        response = httpx.post(f"{engines.prometheus.url}/api/v1/query",
                              data={"query": f'engine:requests_running{{instance="{instance}"}}'}, timeout=10)
        (sample,) = response.json()["data"]["result"]
        labels = sample["metric"]
        assert labels.get("model") == MODEL.get(fixture), (fixture, labels)
        assert labels["engine"] == ENGINE_LABEL[fixture]
        assert "model_name" not in labels and set(labels) <= {"__name__", "engine", "job", "instance", "model"}
