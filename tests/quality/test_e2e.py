"""Response checks and evaluations end to end: the official SDKs, through the real proxy over
real sockets, to the simulator (answers scripted with ``x-sim-output``) or to a scripted
upstream (tool-call deltas the simulator does not make), and the simulator as the judge."""

from __future__ import annotations

import json
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import anthropic
import httpx
import openai
import pytest

from tests.drilldown.otlp import OtlpReceiver
from tests.formats.scripted import ScriptedUpstream
from tests.quality import streams
from tests.quality.judges import FakeJudge
from tests.quality.streams import Answer, ToolCall
from tests.support.metrics import Scrape, after_requests, scrape
from tests.support.sdk import closing
from tests.support.servers import ThreadServer, proxy_server, sidecar, simulator_server
from tests.support.wait import poll

SCHEMA = {"type": "object", "properties": {"city": {"type": "string"}}, "required": ["city"],
          "additionalProperties": False}
FORMAT = {"type": "json_schema", "json_schema": {"name": "city", "schema": SCHEMA}}
LOOP = "Sure, here it is. " + "I will repeat myself now. " * 60
WEATHER = {"type": "object", "properties": {"location": {"type": "string"}}, "required": ["location"]}


@pytest.fixture(scope="module")
def simulator() -> Iterator[ThreadServer]:
    with simulator_server(ttft=0.0, tbt=0.0) as server:
        yield server


def checks(m: Scrape, endpoint: str, model: str) -> dict[tuple[str, str], float]:
    out: dict[tuple[str, str], float] = {}
    for labels in m.series("infermeter_response_checks_total"):
        if labels.get("endpoint") == endpoint and labels.get("model") == model:
            out[(labels["check"], labels["result"])] = m.get("infermeter_response_checks_total", **labels)
    return out


def chat(proxy: ThreadServer, model: str, output: str, stream: bool = True, **kwargs: Any) -> str:
    client = closing(openai.OpenAI(base_url=proxy.url + "/v1", api_key="k", max_retries=0,
                                   default_headers={"x-sim-output": json.dumps(output)}))
    if stream:
        chunks = client.chat.completions.create(model=model, messages=[{"role": "user", "content": "Where?"}],
                                                stream=True, **kwargs)
        return "".join(c.choices[0].delta.content or "" for c in chunks if c.choices)
    answer = client.chat.completions.create(model=model, messages=[{"role": "user", "content": "Where?"}], **kwargs)
    return answer.choices[0].message.content or ""


def test_checks_count_each_answer_as_what_it_is(simulator: ThreadServer, tmp_path: Path) -> None:
    log = tmp_path / "requests.jsonl"
    with proxy_server(sidecar(simulator.url, request_log=str(log))) as proxy:
        before = scrape(proxy.url)
        # What the client receives is untouched: the same text, checked or not.
        assert chat(proxy, "json-good", '{"city": "Paris"}', response_format=FORMAT) == '{"city": "Paris"}'
        chat(proxy, "json-bad", '{"city": "Par', response_format=FORMAT)
        chat(proxy, "json-schema", '{"town": "Paris"}', response_format=FORMAT, stream=False)
        assert chat(proxy, "loop", LOOP) == LOOP
        chat(proxy, "empty", "")
        chat(proxy, "normal", "Paris is the capital of France, on the Seine.")
        m = after_requests(proxy.url, before, 6)
        proxy.app.drilldown.close()
    assert checks(m, "chat_completions", "json-good") == {("empty", "pass"): 1, ("json", "pass"): 1,
                                                          ("repetition", "pass"): 1}
    assert checks(m, "chat_completions", "json-bad")[("json", "fail")] == 1
    assert checks(m, "chat_completions", "json-schema")[("json", "fail")] == 1
    assert checks(m, "chat_completions", "loop") == {("empty", "pass"): 1, ("repetition", "fail"): 1}
    assert checks(m, "chat_completions", "empty") == {("empty", "fail"): 1, ("repetition", "pass"): 1}
    assert checks(m, "chat_completions", "normal") == {("empty", "pass"): 1, ("repetition", "pass"): 1}
    lines = {line["model"]: line for line in map(json.loads, log.read_text().splitlines())}
    assert lines["json-good"]["checks_failed"] == []
    assert lines["json-bad"]["checks_failed"] == ["json"]
    assert lines["loop"]["checks_failed"] == ["repetition"]
    assert lines["empty"]["checks_failed"] == ["empty"]


def test_checks_none_counts_nothing(simulator: ThreadServer) -> None:
    with proxy_server(sidecar(simulator.url, checks="none")) as proxy:
        before = scrape(proxy.url)
        chat(proxy, "m", LOOP)
        m = after_requests(proxy.url, before, 1)
    assert not m.has("infermeter_response_checks_total")


def test_tool_call_arguments_through_the_sdks() -> None:
    broken = Answer(calls=(ToolCall("get_weather", ('{"location": ', '"Par')),))
    good = Answer(calls=(ToolCall("get_weather", ('{"location": ', '"Paris"}')),))
    tools: Any = [{"type": "function", "function": {"name": "get_weather", "parameters": WEATHER}}]
    for answer, result in ((broken, "fail"), (good, "pass")):
        upstream = ScriptedUpstream([(0.0, streams.openai_chat_sse(answer))])
        with ThreadServer(upstream) as up, proxy_server(sidecar(up.url)) as proxy:
            before = scrape(proxy.url)
            client = closing(openai.OpenAI(base_url=proxy.url + "/v1", api_key="k", max_retries=0))
            chunks = list(client.chat.completions.create(model="m", messages=[{"role": "user", "content": "?"}],
                                                         tools=tools, stream=True))
            args = "".join((c.choices[0].delta.tool_calls[0].function.arguments or "")  # type: ignore[union-attr]
                           for c in chunks if c.choices and c.choices[0].delta.tool_calls)
            assert args == answer.calls[0].arguments
            m = after_requests(proxy.url, before, 1)
        assert checks(m, "chat_completions", streams.MODEL)[("tool_arguments", result)] == 1


def test_anthropic_tool_use_input_through_the_sdk() -> None:
    answer = Answer(text=("Checking.",), calls=(ToolCall("get_weather", ('{"locat', 'ion": 3}')),))
    upstream = ScriptedUpstream([(0.0, streams.anthropic_sse(answer))])
    with ThreadServer(upstream) as up, proxy_server(sidecar(up.url)) as proxy:
        before = scrape(proxy.url)
        client = closing(anthropic.Anthropic(base_url=proxy.url, api_key="k", max_retries=0))
        with client.messages.stream(model="claude", max_tokens=50, messages=[{"role": "user", "content": "?"}],
                                    tools=[{"name": "get_weather", "input_schema": dict(WEATHER)}]) as s:
            message = s.get_final_message()
        assert message.content[1].input == {"location": 3}  # type: ignore[union-attr]
        m = after_requests(proxy.url, before, 1)
    # {"location": 3} parses, but the schema wants a string.
    assert checks(m, "messages", streams.MODEL)[("tool_arguments", "fail")] == 1


def test_the_simulator_as_judge(simulator: ThreadServer, tmp_path: Path) -> None:
    log = tmp_path / "requests.jsonl"
    verdict = '{"score": 0.9, "reason": "answers the question"}'
    with simulator_server(ttft=0.0, tbt=0.0, output_text=verdict) as judge, \
            proxy_server(sidecar(simulator.url, request_log=str(log), eval_url=judge.url, eval_model="judge",
                                 eval_sample=1.0, eval_rubric=("relevance", "toxicity"))) as proxy:
        before = scrape(proxy.url)
        for _ in range(3):
            chat(proxy, "judged", "Paris is the capital of France.")
        m = poll(lambda: scrape(proxy.url),
                 lambda now: (now - before).get("infermeter_evals_total", rubric="toxicity", outcome="scored") >= 3)
        proxy.app.drilldown.close()
    assert m.get("infermeter_evals_total", rubric="relevance", outcome="scored") == 3
    assert m.get("infermeter_eval_score_count", model="judged", rubric="relevance") == 3
    assert m.get("infermeter_eval_score_sum", model="judged", rubric="relevance") == pytest.approx(2.7)
    assert m.get("infermeter_eval_score_bucket", model="judged", rubric="relevance", le="0.8") == 0
    assert m.get("infermeter_eval_score_bucket", model="judged", rubric="relevance", le="0.9") == 3
    # The judge's own calls never pass through the proxy: only the three user requests did.
    assert m.get("infermeter_requests_total", endpoint="chat_completions", model="judged", code="200",
                 outcome="completed") == 3
    assert m.get("infermeter_requests_total", endpoint="chat_completions", model="judge", code="200",
                 outcome="completed") == 0
    lines = [json.loads(line) for line in log.read_text().splitlines()]
    evals = [line for line in lines if line.get("event") == "eval"]
    requests = {line["request_id"] for line in lines if "event" not in line}
    assert len(evals) == 6 and {e["rubric"] for e in evals} == {"relevance", "toxicity"}
    assert all(e["score"] == 0.9 and e["reason"] == "answers the question" for e in evals)
    assert {e["request_id"] for e in evals} == requests
    # Never the prompt or the answer in the log.
    assert "Paris" not in log.read_text()


def test_a_judge_that_is_down_costs_the_relay_nothing(simulator: ThreadServer) -> None:
    with proxy_server(sidecar(simulator.url, eval_url="http://127.0.0.1:9", eval_model="judge", eval_sample=1.0,
                              eval_timeout=5.0)) as proxy:
        before = scrape(proxy.url)
        start = time.perf_counter()
        for _ in range(3):
            assert chat(proxy, "m", "An answer.") == "An answer."
        elapsed = time.perf_counter() - start
        m = poll(lambda: scrape(proxy.url),
                 lambda now: (now - before).get("infermeter_evals_total", rubric="relevance", outcome="failed") >= 3)
    assert elapsed < 3.0
    assert m.get("infermeter_evals_total", rubric="relevance", outcome="scored") == 0


def test_simulator_scripted_output_on_every_format(simulator: ThreadServer) -> None:
    text = '{"a": [1, 2]}'
    for path, body in (("/v1/chat/completions", {"model": "m", "messages": []}),
                       ("/v1/responses", {"model": "m", "input": "?"}),
                       ("/v1/messages", {"model": "m", "max_tokens": 9, "messages": []}),
                       ("/api/chat", {"model": "m", "messages": [], "stream": False})):
        r = httpx.post(simulator.url + path, json=body, headers={"x-sim-output": json.dumps(text)})
        assert r.status_code == 200
        assert text in r.text or json.dumps(text) in r.text


def test_a_hanging_judge_keeps_its_queue_bounded_and_streams_flowing(simulator: ThreadServer) -> None:
    with ThreadServer(FakeJudge("hang")) as judge, \
            proxy_server(sidecar(simulator.url, eval_url=judge.url, eval_model="judge", eval_sample=1.0,
                                 eval_queue=5, eval_concurrency=2, eval_timeout=600.0)) as proxy:
        before = scrape(proxy.url)
        start = time.perf_counter()
        for i in range(20):
            assert chat(proxy, "m", f"Answer {i}.") == f"Answer {i}."
        elapsed = time.perf_counter() - start
        m = after_requests(proxy.url, before, 20)
        judge_quality = proxy.app.quality
        assert judge_quality is not None and judge_quality.judge is not None
        queued = judge_quality.judge.queued
    # Two calls hang in flight, five wait: the other thirteen were dropped, and counted.
    assert queued == 5
    assert m.get("infermeter_evals_total", rubric="relevance", outcome="dropped") == 13
    assert m.get("infermeter_evals_total", rubric="relevance", outcome="scored") == 0
    # 20 streams of a zero-delay simulator: nothing waited for the judge's hour.
    assert elapsed < 20


def test_the_span_names_the_failed_checks(simulator: ThreadServer, monkeypatch: pytest.MonkeyPatch) -> None:
    with OtlpReceiver() as receiver:
        for name in ("OTEL_TRACES_SAMPLER", "OTEL_TRACES_SAMPLER_ARG", "OTEL_EXPORTER_OTLP_TRACES_ENDPOINT",
                     "OTEL_EXPORTER_OTLP_PROTOCOL", "OTEL_SDK_DISABLED"):
            monkeypatch.delenv(name, raising=False)
        monkeypatch.setenv("OTEL_EXPORTER_OTLP_ENDPOINT", receiver.url)
        monkeypatch.setenv("OTEL_BSP_SCHEDULE_DELAY", "50")
        with proxy_server(sidecar(simulator.url)) as proxy:
            chat(proxy, "looping", LOOP, response_format={"type": "json_object"})
            chat(proxy, "fine", "Fine.")
            spans = {s.attributes.get("gen_ai.request.model"): s for s in receiver.wait_for(2)}
    assert spans["looping"].attributes["infermeter.checks_failed"] == ("json", "repetition")
    assert "infermeter.checks_failed" not in spans["fine"].attributes
