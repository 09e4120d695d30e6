"""The span's name, attributes and status, straight from finished records (no SDK, no sockets).

test_tracing.py checks the same attributes end to end; here each rule has its own record.
"""

from __future__ import annotations

import pytest

from proxy.drilldown.attributes import MODEL_MAX, span_attributes, span_failed, span_name, start_name
from proxy.stream import endpoints as ep
from proxy.stream.base import RequestInfo, StreamSummary
from proxy.timing import CANCELLED, COMPLETED, REJECTED, UPSTREAM_ERROR, RequestRecord

MS = 1_000_000
SERVER = ("llm.internal", 8000)


def _record(endpoint: str = ep.CHAT_COMPLETIONS, **fields: object) -> RequestRecord:
    rec = RequestRecord(endpoint=endpoint, t_arrival=1_000 * MS, method="POST", path="/v1/chat/completions",
                        code=200, request_id="rid-1")
    for name, value in fields.items():
        setattr(rec, name, value)
    return rec


def _streamed(output_tokens: int | None = None) -> RequestRecord:
    """A chat stream of 3 token events: headers at 5 ms, the first event at 40 ms, the last
    at 100 ms, the last byte at 120 ms; ``output_tokens`` as the server reported (or not)."""
    return _record(stream=True, request=RequestInfo(model="m-req", stream=True, max_tokens=64, temperature=0.2,
                                                    top_p=0.9),
                   summary=StreamSummary(model="m-resp", input_tokens=7, output_tokens=output_tokens,
                                        finish_reason="stop", token_events=3),
                   t_headers=1_005 * MS, t_first=1_040 * MS, t_last=1_100 * MS, t_end=1_120 * MS)


def test_a_completed_stream_with_exact_usage() -> None:
    a = span_attributes(_streamed(output_tokens=4), *SERVER)
    assert a == {
        "http.request.method": "POST", "http.response.status_code": 200,
        "server.address": "llm.internal", "server.port": 8000,
        "infermeter.endpoint": "chat_completions", "infermeter.outcome": "completed", "infermeter.stream": True,
        "infermeter.request_id": "rid-1",
        "gen_ai.operation.name": "chat", "gen_ai.provider.name": "openai",
        "gen_ai.request.model": "m-req", "gen_ai.request.stream": True, "gen_ai.request.max_tokens": 64,
        "gen_ai.request.temperature": 0.2, "gen_ai.request.top_p": 0.9,
        "gen_ai.response.model": "m-resp", "gen_ai.usage.input_tokens": 7, "gen_ai.usage.output_tokens": 4,
        "gen_ai.response.finish_reasons": ("stop",),
        "gen_ai.response.time_to_first_chunk": pytest.approx(0.040),
        "infermeter.tpot": pytest.approx(0.060 / 3), "infermeter.upstream_headers": pytest.approx(0.005),
    }


def test_counted_tokens_are_not_called_usage() -> None:
    # No usage from the server: the proxy counted 3 token events, and says they are its count.
    a = span_attributes(_streamed(), *SERVER)
    assert "gen_ai.usage.output_tokens" not in a
    assert a["infermeter.usage.estimated_output_tokens"] == 3
    assert a["infermeter.tpot"] == pytest.approx(0.060 / 2)


def test_what_the_request_did_not_say_is_left_out() -> None:
    rec = _record(request=RequestInfo(model=None, stream=False), summary=StreamSummary(), t_end=1_010 * MS)
    a = span_attributes(rec, *SERVER)
    assert a["gen_ai.request.stream"] is False and a["infermeter.stream"] is False
    for absent in ("gen_ai.request.model", "gen_ai.request.max_tokens", "gen_ai.request.temperature",
                   "gen_ai.request.top_p", "gen_ai.response.model", "gen_ai.usage.input_tokens",
                   "gen_ai.usage.output_tokens", "infermeter.usage.estimated_output_tokens",
                   "gen_ai.response.finish_reasons", "gen_ai.response.time_to_first_chunk", "infermeter.tpot",
                   "infermeter.upstream_headers", "infermeter.checks_failed", "error.type"):
        assert absent not in a, absent


def test_embeddings_have_no_stream_attribute() -> None:
    rec = _record(ep.EMBEDDINGS, request=RequestInfo(model="e5", stream=False))
    a = span_attributes(rec, *SERVER)
    assert (a["gen_ai.operation.name"], a["gen_ai.provider.name"]) == ("embeddings", "openai")
    assert "gen_ai.request.stream" not in a and a["gen_ai.request.model"] == "e5"


@pytest.mark.parametrize("endpoint, operation, provider", [
    (ep.CHAT_COMPLETIONS, "chat", "openai"), (ep.RESPONSES, "chat", "openai"), (ep.MESSAGES, "chat", "anthropic"),
    (ep.OLLAMA_CHAT, "chat", "ollama"), (ep.COMPLETIONS, "text_completion", "openai"),
    (ep.OLLAMA_GENERATE, "text_completion", "ollama"), (ep.TGI_GENERATE, "text_completion", "tgi"),
    (ep.LLAMACPP_COMPLETION, "text_completion", "llama.cpp"), (ep.EMBEDDINGS, "embeddings", "openai"),
])
def test_operation_and_provider_by_endpoint(endpoint: str, operation: str, provider: str) -> None:
    rec = _record(endpoint, request=RequestInfo(model="m"))
    a = span_attributes(rec, *SERVER)
    assert (a["gen_ai.operation.name"], a["gen_ai.provider.name"]) == (operation, provider)
    assert (start_name(rec), span_name(rec)) == (operation, f"{operation} m")


def test_other_paths_are_plain_http_spans() -> None:
    rec = _record(ep.OTHER, method="GET", path="/v1/models", request=RequestInfo(model="ignored"))
    a = span_attributes(rec, *SERVER)
    assert not any(name.startswith("gen_ai.") for name in a)
    assert (start_name(rec), span_name(rec)) == ("GET", None)


def test_span_name_waits_for_the_requests_model_and_cuts_it() -> None:
    assert span_name(_record()) is None  # the body was never read (a 413, a client gone)
    assert span_name(_record(request=RequestInfo(model=""))) is None
    long = "x" * 500
    rec = _record(request=RequestInfo(model=long), summary=StreamSummary(model=long))
    assert span_name(rec) == "chat " + "x" * MODEL_MAX
    a = span_attributes(rec, *SERVER)
    assert a["gen_ai.request.model"] == a["gen_ai.response.model"] == "x" * MODEL_MAX


@pytest.mark.parametrize("outcome, code, error_type, failed", [
    (COMPLETED, 200, None, False),
    (COMPLETED, 404, None, False),
    (COMPLETED, 503, "503", True),
    (CANCELLED, 499, "cancelled", False),
    (UPSTREAM_ERROR, 502, "upstream_error", True),
    (REJECTED, 413, "rejected", True),
])
def test_error_type_and_status(outcome: str, code: int, error_type: str | None, failed: bool) -> None:
    rec = _record(outcome=outcome, code=code)
    assert span_attributes(rec, *SERVER).get("error.type") == error_type
    assert span_failed(rec) is failed


def test_no_status_code_before_one_was_sent_and_no_request_id_when_unset() -> None:
    a = span_attributes(_record(code=0, request_id=None), *SERVER)
    assert "http.response.status_code" not in a and "infermeter.request_id" not in a


def test_failed_checks_are_named() -> None:
    assert span_attributes(_record(checks_failed=["json", "empty"]), *SERVER)["infermeter.checks_failed"] == (
        "json", "empty")
    assert "infermeter.checks_failed" not in span_attributes(_record(checks_failed=[]), *SERVER)
