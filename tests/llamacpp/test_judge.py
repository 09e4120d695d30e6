"""A real judge: SmolLM2 in llama-server scores sampled answers, held to the verdict's JSON
schema by llama.cpp's grammar, while the proxy relays to the simulator."""

from __future__ import annotations

import json
from pathlib import Path

import openai
import pytest

from tests.support.metrics import scrape
from tests.support.sdk import closing
from tests.support.servers import proxy_server, sidecar, simulator_server
from tests.support.wait import poll

from .conftest import MODEL_ALIAS, LlamaServer

pytestmark = pytest.mark.llamacpp

RUBRICS = ("relevance", "toxicity")


def test_smollm2_judges_sampled_answers(llama_server: LlamaServer, tmp_path: Path) -> None:
    log = tmp_path / "requests.jsonl"
    with simulator_server(ttft=0.0, tbt=0.0) as upstream, \
            proxy_server(sidecar(upstream.url, request_log=str(log), eval_url=llama_server.url + "/v1",
                                 eval_model=MODEL_ALIAS, eval_sample=1.0, eval_rubric=RUBRICS, eval_timeout=120.0,
                                 eval_concurrency=1)) as proxy:
        client = closing(openai.OpenAI(base_url=proxy.url + "/v1", api_key="k", max_retries=0))
        for question, answer in (("What is the capital of France?", "The capital of France is Paris."),
                                 ("Name a colour.", "Blue is a colour.")):
            reply = client.chat.completions.create(model="answers", messages=[{"role": "user", "content": question}],
                                                   extra_headers={"x-sim-output": json.dumps(answer)})
            assert reply.choices[0].message.content == answer

        def judged() -> float:
            return sum(scrape(proxy.url).get("infermeter_evals_total", rubric=r, outcome=o)
                       for r in RUBRICS for o in ("scored", "failed", "dropped"))

        # Two answers, two rubrics: four judge calls, one at a time on one CPU thread.
        poll(judged, lambda n: n >= 4, timeout=240, step=0.5)
        m = scrape(proxy.url)
        proxy.app.drilldown.close()
    scored = sum(m.get("infermeter_evals_total", rubric=r, outcome="scored") for r in RUBRICS)
    # The grammar holds a 135M model to the schema: every call gives a verdict.
    assert scored == 4
    for rubric in RUBRICS:
        assert m.get("infermeter_eval_score_count", model="answers", rubric=rubric) == 2
        total = m.get("infermeter_eval_score_sum", model="answers", rubric=rubric)
        assert 0 <= total <= 2
    evals = [line for line in map(json.loads, log.read_text().splitlines()) if line.get("event") == "eval"]
    assert len(evals) == 4
    assert all(0 <= e["score"] <= 1 and isinstance(e["reason"], str) for e in evals)
