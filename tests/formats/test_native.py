"""TGI and llama.cpp native endpoints through the proxy to the simulator, with raw httpx."""

from __future__ import annotations

from typing import Any

import httpx
import orjson

from tests.formats.compare import through
from tests.formats.conftest import Route
from tests.formats.expect import (
    TBT,
    TTFT,
    check_counts,
    check_no_stream_timing,
    check_stream,
    check_whole,
)

PROMPT = "one two three"


def _post(url: str, body: dict[str, Any]) -> httpx.Response:
    response = httpx.post(url, json=body, timeout=10)
    response.raise_for_status()
    return response


def _sse_objects(text: str) -> list[Any]:
    """The JSON of every ``data:`` line, with or without the space after the colon."""
    return [orjson.loads(line.partition(":")[2]) for line in text.splitlines() if line.startswith("data:")]


def test_tgi_generate_stream_is_byte_identical(route: Route) -> None:
    body = {"inputs": PROMPT, "parameters": {"details": True}}

    def stream(base: str) -> bytes:
        return _post(base + "/generate_stream", body).content

    raw, d = through(route, stream)
    assert raw.startswith(b'data:{"index":1,') and raw.count(b"data:") == 8
    # TGI names no model: the label is "unknown". Counts come from the last event's details.
    check_stream(d, "tgi_generate", "unknown", inputs=3, outputs=8, reason="stop")

    def plain(base: str) -> bytes:
        return _post(base + "/generate_stream", {"inputs": PROMPT}).content

    _, d = through(route, plain)
    # Without details TGI states no counts and no reason: output = token events, estimated.
    check_stream(d, "tgi_generate", "unknown", inputs=None, outputs=8, reason=None, estimated=True)


def test_tgi_generate_json(route: Route) -> None:
    body = {"inputs": PROMPT, "parameters": {"details": True, "decoder_input_details": True, "max_new_tokens": 5}}

    def whole(base: str) -> Any:
        return _post(base + "/generate", body).json()

    answer, d = through(route, whole)
    assert answer["details"]["finish_reason"] == "length"
    # /generate has no input_length: the prompt size is the prefill list, sent only on request.
    check_whole(d, "tgi_generate", "unknown", inputs=3, outputs=5, reason="length", tokens=5)

    def bare(base: str) -> Any:
        return _post(base + "/generate", {"inputs": PROMPT}).json()

    _, d = through(route, bare)
    check_counts(d, "tgi_generate", "unknown", inputs=None, outputs=0, reason=None, stream=False)
    check_no_stream_timing(d, "tgi_generate", "unknown", ready=TTFT + 7 * TBT)


def test_llamacpp_completion_stream_and_json(route: Route) -> None:
    def stream(base: str) -> list[Any]:
        return _sse_objects(_post(base + "/completion", {"prompt": PROMPT, "stream": True}).text)

    events, d = through(route, stream)
    assert [e["stop"] for e in events] == [False] * 8 + [True]
    # The model comes from the final event (the server's loaded model), the counts too.
    check_stream(d, "llamacpp_completion", "infermeter-sim", inputs=3, outputs=8, reason="stop")

    def whole(base: str) -> Any:
        return _post(base + "/completion", {"prompt": PROMPT, "n_predict": 5}).json()

    answer, d = through(route, whole)
    assert answer["stop_type"] == "limit"
    check_whole(d, "llamacpp_completion", "infermeter-sim", inputs=3, outputs=5, reason="length", tokens=5)
