"""What a request's span says: its name, attributes and status, from the finished record.

Pure (record in, attributes out: no clock, no I/O, no OpenTelemetry import), so every rule
is unit-tested on records as the taps are on bytes. The names follow the OpenTelemetry GenAI
semantic conventions as of semantic-conventions v1.41.0 (development status;
docs/drilldown.md lists every attribute). Only ids and numbers, never content.
"""

from __future__ import annotations

from proxy.stream import endpoints as ep
from proxy.timing import CANCELLED, COMPLETED, REJECTED, UPSTREAM_ERROR, RequestRecord

# What OpenTelemetry accepts as an attribute value, of the kinds used here.
AttributeValue = str | bool | int | float | tuple[str, ...]

# gen_ai.operation.name and gen_ai.provider.name by endpoint. The provider is the wire
# format the proxy read (a vLLM speaking OpenAI's API reports as "openai", as the
# convention's note on gen_ai.provider.name allows); server.address names the real one.
OPERATION = {
    ep.CHAT_COMPLETIONS: "chat", ep.RESPONSES: "chat", ep.MESSAGES: "chat", ep.OLLAMA_CHAT: "chat",
    ep.COMPLETIONS: "text_completion", ep.OLLAMA_GENERATE: "text_completion", ep.TGI_GENERATE: "text_completion",
    ep.LLAMACPP_COMPLETION: "text_completion", ep.EMBEDDINGS: "embeddings",
}
PROVIDER = {
    ep.CHAT_COMPLETIONS: "openai", ep.COMPLETIONS: "openai", ep.RESPONSES: "openai", ep.EMBEDDINGS: "openai",
    ep.MESSAGES: "anthropic", ep.OLLAMA_CHAT: "ollama", ep.OLLAMA_GENERATE: "ollama", ep.TGI_GENERATE: "tgi",
    ep.LLAMACPP_COMPLETION: "llama.cpp",
}
# Model names come from clients and servers: long enough for any real one, bounded for spans.
MODEL_MAX = 128


def start_name(rec: RequestRecord) -> str:
    """The span's name at arrival, before the body is read: the operation, else the HTTP method."""
    return OPERATION.get(rec.endpoint, rec.method)


def span_name(rec: RequestRecord) -> str | None:
    """``{operation} {model}`` once the request named its model; None keeps the start name."""
    operation = OPERATION.get(rec.endpoint)
    model = rec.request_model
    if operation is None or not model:
        return None
    return f"{operation} {model[:MODEL_MAX]}"


def span_failed(rec: RequestRecord) -> bool:
    """Span status ERROR: the upstream failed, the proxy refused, or the client got a 5xx."""
    return rec.outcome in (UPSTREAM_ERROR, REJECTED) or rec.code >= 500


def span_attributes(rec: RequestRecord, server_address: str, server_port: int) -> dict[str, AttributeValue]:
    """What the span says about a finished request: its ids, never its content."""
    a: dict[str, AttributeValue] = {
        "http.request.method": rec.method,
        "server.address": server_address,
        "server.port": server_port,
        "infermeter.endpoint": rec.endpoint,
        "infermeter.outcome": rec.outcome,
    }
    if rec.request_id is not None:
        a["infermeter.request_id"] = rec.request_id
    if rec.tenant != "none":  # DESIGN.md section 14: a tenant's name, never its key
        a["infermeter.tenant"] = rec.tenant
    if rec.code:
        a["http.response.status_code"] = rec.code
    operation = OPERATION.get(rec.endpoint)
    if operation is not None:
        a["gen_ai.operation.name"] = operation
        a["gen_ai.provider.name"] = PROVIDER[rec.endpoint]
        _request(a, rec, operation)
        _response(a, rec)
    headers = rec.headers_s
    if headers is not None:
        a["infermeter.upstream_headers"] = headers
    a["infermeter.stream"] = rec.stream
    if rec.outcome != COMPLETED:
        a["error.type"] = rec.outcome if rec.outcome != CANCELLED else "cancelled"
    elif rec.code >= 500:
        a["error.type"] = str(rec.code)
    return a


def _request(a: dict[str, AttributeValue], rec: RequestRecord, operation: str) -> None:
    info = rec.request
    if info is None:
        return
    if info.model:
        a["gen_ai.request.model"] = info.model[:MODEL_MAX]
    if operation != "embeddings":
        a["gen_ai.request.stream"] = info.stream
    if info.max_tokens is not None:
        a["gen_ai.request.max_tokens"] = info.max_tokens
    if info.temperature is not None:
        a["gen_ai.request.temperature"] = info.temperature
    if info.top_p is not None:
        a["gen_ai.request.top_p"] = info.top_p


def _response(a: dict[str, AttributeValue], rec: RequestRecord) -> None:
    summary = rec.summary
    if summary.model:
        a["gen_ai.response.model"] = summary.model[:MODEL_MAX]
    if summary.input_tokens is not None:
        a["gen_ai.usage.input_tokens"] = summary.input_tokens
    # Only exact counts take the convention's name; events counted by the proxy are
    # not tokens, and a vLLM span in the same trace reports the exact ones.
    if summary.output_tokens is not None:
        a["gen_ai.usage.output_tokens"] = summary.output_tokens
    elif rec.tokens_estimated:
        a["infermeter.usage.estimated_output_tokens"] = summary.token_events
    if summary.finish_reason is not None:
        a["gen_ai.response.finish_reasons"] = (summary.finish_reason,)
    ttft = rec.ttft_s
    if ttft is not None:
        a["gen_ai.response.time_to_first_chunk"] = ttft
    tpot = rec.tpot_s
    if tpot is not None:
        a["infermeter.tpot"] = tpot
    if rec.checks_failed:  # response checks (DESIGN.md section 15): the ones this answer failed
        a["infermeter.checks_failed"] = tuple(rec.checks_failed)
