"""The judge: verdicts scored, everything else counted, the queue bounded, never a wait."""

from __future__ import annotations

import asyncio
import random
import time
from typing import Any

import pytest
from prometheus_client import CollectorRegistry, Counter, Histogram

from proxy.quality import rubrics
from proxy.quality.exchange import Exchange, prompt_parts
from proxy.quality.judge import VERDICT_SCHEMA, Judge, JudgeConfig, chat_url, parse_verdict
from tests.quality.judges import FakeJudge
from tests.support.servers import ThreadServer

EX = Exchange("req-1", "m", "You answer about France.", "What is the capital of France?", "Paris.")


def metrics() -> tuple[Histogram, Counter]:
    registry = CollectorRegistry()
    score = Histogram("infermeter_eval_score", "s", ("model", "rubric"), registry=registry,
                      buckets=[i / 10 for i in range(1, 11)])
    evals = Counter("infermeter_evals", "e", ("rubric", "outcome"), registry=registry)
    return score, evals


def count(evals: Counter, rubric: str, outcome: str) -> float:
    return float(evals.labels(rubric, outcome)._value.get())  # noqa: SLF001 (a fresh registry per test)


async def run_judge(url: str, submits: int, wait: float, **config: Any) -> tuple[Counter, Histogram, list[dict[str, Any]]]:
    score, evals = metrics()
    lines: list[dict[str, Any]] = []
    cfg = JudgeConfig(url=url, model="judge", sample=1.0, rubrics={"relevance": rubrics.BUILT_IN["relevance"]},
                      **config)
    judge = Judge(cfg, score, evals, lines.append, rng=random.Random(1))
    judge.start()
    try:
        for _ in range(submits):
            judge.submit(EX)
        deadline = time.monotonic() + wait
        while time.monotonic() < deadline and (judge.queued or sum(count(evals, "relevance", o) for o in
                                                                    ("scored", "failed", "dropped")) < submits):
            await asyncio.sleep(0.02)
    finally:
        await judge.close()
    return evals, score, lines


def test_verdicts_are_scored_and_logged() -> None:
    fake = FakeJudge("verdict", score=0.8)
    with ThreadServer(fake) as server:
        evals, score, lines = asyncio.run(run_judge(server.url + "/v1", 3, 10))
    assert count(evals, "relevance", "scored") == 3
    assert lines == [{"event": "eval", "request_id": "req-1", "rubric": "relevance", "score": 0.8, "reason": "fine"}] * 3
    assert score.labels("m", "relevance")._sum.get() == pytest.approx(2.4)  # noqa: SLF001
    sent = fake.bodies[0]
    assert sent["response_format"]["json_schema"]["schema"] == VERDICT_SCHEMA
    assert "What is the capital of France?" in sent["messages"][1]["content"]
    assert "Paris." in sent["messages"][1]["content"]


@pytest.mark.parametrize("mode", ["garbage", "out_of_range", "down"])
def test_a_bad_judge_is_counted_as_failed(mode: str) -> None:
    with ThreadServer(FakeJudge(mode)) as server:
        evals, _, lines = asyncio.run(run_judge(server.url, 2, 10))
    assert count(evals, "relevance", "failed") == 2
    assert count(evals, "relevance", "scored") == 0
    assert lines == []


def test_a_judge_that_refuses_the_schema_is_asked_without_it() -> None:
    fake = FakeJudge("no_schema", score=0.3)
    with ThreadServer(fake) as server:
        evals, _, _ = asyncio.run(run_judge(server.url, 2, 10, concurrency=1))
    assert count(evals, "relevance", "scored") == 2
    # The first job asked twice; the second went without the schema at once.
    assert ["response_format" in b for b in fake.bodies] == [True, False, False]


def test_a_hanging_judge_fills_the_bounded_queue_and_drops_the_rest() -> None:
    async def scenario(url: str) -> tuple[Counter, float, int]:
        score, evals = metrics()
        cfg = JudgeConfig(url=url, model="judge", sample=1.0, rubrics={"relevance": "{answer}"},
                          concurrency=2, queue_size=5, timeout=0.5)
        judge = Judge(cfg, score, evals)
        judge.start()
        start = time.perf_counter()
        for _ in range(50):
            judge.submit(EX)
        submit_s = time.perf_counter() - start
        queued = judge.queued
        await asyncio.sleep(2.5)  # the two in flight time out, the queue drains into timeouts
        await judge.close()
        return evals, submit_s, queued

    with ThreadServer(FakeJudge("hang")) as server:
        evals, submit_s, queued = asyncio.run(scenario(server.url))
    assert queued <= 5
    # 50 submits never wait for the judge: one that waited would take its 0.5 s timeout.
    assert submit_s < 0.5
    dropped = count(evals, "relevance", "dropped")
    assert dropped >= 50 - 5 - 2
    assert count(evals, "relevance", "failed") >= 2
    assert dropped + count(evals, "relevance", "failed") <= 50


def test_judge_down_at_its_address() -> None:
    evals, _, _ = asyncio.run(run_judge("http://127.0.0.1:9", 2, 10, timeout=2))
    assert count(evals, "relevance", "failed") == 2


def test_sampling_follows_the_ratio() -> None:
    async def ratio() -> float:
        judge = Judge(JudgeConfig(url="http://127.0.0.1:9", model="j", sample=0.25, rubrics={"r": "{answer}"}),
                      rng=random.Random(7))
        assert not judge.sampled()  # not started: nothing is sampled
        judge.start()
        try:
            return sum(judge.sampled() for _ in range(20000)) / 20000
        finally:
            await judge.close()

    assert asyncio.run(ratio()) == pytest.approx(0.25, abs=0.02)


@pytest.mark.parametrize(("content", "verdict"), [
    ('{"score": 0.5, "reason": "ok"}', (0.5, "ok")),
    ('```json\n{"score": 1, "reason": "yes"}\n```', (1.0, "yes")),
    ('{"score": 0}', (0.0, "")),
    ('{"score": true, "reason": "x"}', None),
    ('{"score": -0.1}', None),
    ('{"score": "0.5"}', None),
    ("[0.5]", None),
    (None, None),
    ("no json", None),
])
def test_parse_verdict(content: Any, verdict: tuple[float, str] | None) -> None:
    assert parse_verdict(content) == verdict


def test_chat_url() -> None:
    assert chat_url("http://j:8080") == "http://j:8080/v1/chat/completions"
    assert chat_url("http://j:8080/v1/") == "http://j:8080/v1/chat/completions"
    assert chat_url("http://j/openai/v1/chat/completions") == "http://j/openai/v1/chat/completions"


def test_prompt_parts_in_each_format() -> None:
    chat = b'{"messages": [{"role": "system", "content": "Be brief."}, {"role": "user", "content": "Hi"},' \
           b' {"role": "assistant", "content": "Hello"}, {"role": "user", "content": [{"type": "text", "text": "Capital?"}]}]}'
    context, question = prompt_parts("chat_completions", chat)
    assert question == "Capital?"
    assert context == "system: Be brief.\n\nuser: Hi\n\nassistant: Hello"
    assert prompt_parts("messages", b'{"system": "Docs: X=1", "messages": [{"role": "user", "content": "X?"}]}') \
        == ("Docs: X=1", "X?")
    assert prompt_parts("responses", b'{"instructions": "I", "input": "Q"}') == ("I", "Q")
    assert prompt_parts("ollama_generate", b'{"system": "S", "prompt": "P"}') == ("S", "P")
    assert prompt_parts("chat_completions", b"not json") == ("", "")


def test_render_replaces_placeholders_once() -> None:
    assert rubrics.render("{question}|{answer}", "c", "say {answer}", "A") == "say {answer}|A"


def test_rubrics_file(tmp_path: Any) -> None:
    path = tmp_path / "r.json"
    path.write_text('{"politeness": "Score politeness of {answer}"}')
    assert rubrics.load(str(path)) == {"politeness": "Score politeness of {answer}"}
    path.write_text('{"bad name!": "{answer}"}')
    with pytest.raises(ValueError, match="letters"):
        rubrics.load(str(path))
    path.write_text('{"x": "no placeholder"}')
    with pytest.raises(ValueError, match="answer"):
        rubrics.load(str(path))
