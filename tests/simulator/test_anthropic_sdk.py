"""The official anthropic SDK parses the simulator's Messages API."""

from __future__ import annotations

from typing import Any

import anthropic
import pytest
from anthropic.types import RawMessageDeltaEvent, RawMessageStartEvent

from tests.support.servers import ThreadServer
from tests.support.sdk import closing

MESSAGES = [{"role": "user", "content": "count these four words"}]


@pytest.fixture
def client(fast: ThreadServer) -> anthropic.Anthropic:
    return closing(anthropic.Anthropic(base_url=fast.url, api_key="sk-ant-test", max_retries=0))


def test_stream_helper_accumulates(client: anthropic.Anthropic) -> None:
    with client.messages.stream(model="claude-sim", max_tokens=100, messages=MESSAGES,  # type: ignore[arg-type]
                                system="you are terse") as stream:
        pieces = list(stream.text_stream)
        final = stream.get_final_message()
    assert len(pieces) == 8
    assert final.content[0].type == "text" and final.content[0].text == "".join(pieces)
    assert final.stop_reason == "end_turn"
    assert final.model == "claude-sim"
    assert (final.usage.input_tokens, final.usage.output_tokens) == (7, 8)


def test_raw_stream_event_order(client: anthropic.Anthropic) -> None:
    stream = client.messages.create(model="m", max_tokens=3, messages=MESSAGES, stream=True)  # type: ignore[arg-type]
    events: list[Any] = list(stream)
    kinds = [e.type for e in events]
    assert kinds == ["message_start", "content_block_start", "content_block_delta", "content_block_delta",
                     "content_block_delta", "content_block_stop", "message_delta", "message_stop"]
    start, delta = events[0], events[-2]
    assert isinstance(start, RawMessageStartEvent) and start.message.usage.input_tokens == 4
    assert isinstance(delta, RawMessageDeltaEvent)
    assert delta.delta.stop_reason == "max_tokens"
    assert delta.usage.output_tokens == 3


def test_whole_message(client: anthropic.Anthropic) -> None:
    message = client.messages.create(model="m", max_tokens=4, messages=MESSAGES)  # type: ignore[arg-type]
    assert message.role == "assistant"
    assert message.stop_reason == "max_tokens"
    assert message.content[0].type == "text" and len(message.content[0].text.split()) == 4
    assert (message.usage.input_tokens, message.usage.output_tokens) == (4, 4)


def test_overloaded_error(fast: ThreadServer) -> None:
    client = closing(anthropic.Anthropic(base_url=fast.url, api_key="k", max_retries=0, default_headers={"x-sim-error": "529"}))
    with pytest.raises(anthropic.APIStatusError) as caught:
        client.messages.create(model="m", max_tokens=4, messages=MESSAGES)  # type: ignore[arg-type]
    assert caught.value.status_code == 529
    body = caught.value.body
    assert isinstance(body, dict) and body["error"]["type"] == "overloaded_error"
