"""The anthropic SDK through the proxy to the simulator: Messages, streaming and not."""

from __future__ import annotations

from typing import Any

import anthropic
from anthropic.types import MessageParam

from tests.formats.compare import through
from tests.formats.conftest import Route
from tests.formats.expect import check_stream, check_whole
from tests.support.sdk import closing

MESSAGES: list[MessageParam] = [{"role": "user", "content": "count these four words"}]


def _client(base: str) -> anthropic.Anthropic:
    return closing(anthropic.Anthropic(base_url=base, api_key="sk-ant-test", max_retries=0, timeout=10))


def test_messages_stream(route: Route) -> None:
    def stream(base: str) -> list[dict[str, Any]]:
        events = _client(base).messages.create(model="claude-s", max_tokens=100, messages=MESSAGES,
                                               system="be brief", stream=True)
        return [e.model_dump() for e in events]

    events, d = through(route, stream)
    assert [e["type"] for e in events].count("content_block_delta") == 8
    assert events[-2]["usage"]["output_tokens"] == 8
    # Input is message_start's count; output the cumulative count of the last message_delta.
    check_stream(d, "messages", "claude-s", inputs=6, outputs=8, reason="stop")


def test_stream_helper_and_whole_message(route: Route) -> None:
    def helper(base: str) -> dict[str, Any]:
        with _client(base).messages.stream(model="claude-h", max_tokens=100, messages=MESSAGES) as s:
            text = "".join(s.text_stream)
            final = s.get_final_message().model_dump()
        assert final["content"][0]["text"] == text
        return final

    _, d = through(route, helper)
    check_stream(d, "messages", "claude-h", inputs=4, outputs=8, reason="stop")

    def whole(base: str) -> dict[str, Any]:
        return _client(base).messages.create(model="claude-j", max_tokens=5, messages=MESSAGES).model_dump()

    message, d = through(route, whole)
    assert message["stop_reason"] == "max_tokens"
    check_whole(d, "messages", "claude-j", inputs=4, outputs=5, reason="length", tokens=5)
