"""The official ollama SDK parses the simulator's Ollama API."""

from __future__ import annotations

import ollama
import pytest

from tests.support.servers import ThreadServer
from tests.support.sdk import closing

MESSAGES = [{"role": "user", "content": "why is the sky blue"}]


@pytest.fixture
def client(fast: ThreadServer) -> ollama.Client:
    return closing(ollama.Client(host=fast.url))


def test_chat_streams_by_default_shape(client: ollama.Client) -> None:
    parts = list(client.chat(model="llama3", messages=MESSAGES, stream=True))
    assert [p.done for p in parts] == [False] * 8 + [True]
    final = parts[-1]
    assert final.done_reason == "stop"
    assert (final.prompt_eval_count, final.eval_count) == (5, 8)
    assert final.total_duration is not None and final.total_duration >= 10_000_000  # the 10 ms TTFT at least
    assert final.eval_duration is not None and final.prompt_eval_duration is not None
    assert all(p.model == "llama3" for p in parts)
    assert len("".join(p.message.content or "" for p in parts).split()) == 8


def test_chat_whole_and_num_predict(client: ollama.Client) -> None:
    reply = client.chat(model="llama3", messages=MESSAGES, options={"num_predict": 3})
    assert reply.done and reply.done_reason == "length"
    assert reply.eval_count == 3
    assert len((reply.message.content or "").split()) == 3


def test_generate_stream_and_whole(client: ollama.Client) -> None:
    parts = list(client.generate(model="m", prompt="one two three", stream=True))
    assert sum(1 for p in parts if p.response) == 8
    assert parts[-1].done and parts[-1].prompt_eval_count == 3
    whole = client.generate(model="m", prompt="one two three")
    assert whole.response == "".join(p.response or "" for p in parts)


def test_embed_embeddings_list(client: ollama.Client) -> None:
    embedded = client.embed(model="e", input=["a b", "c"])
    assert len(embedded.embeddings) == 2 and embedded.prompt_eval_count == 3
    assert len(client.embeddings(model="e", prompt="a b").embedding) == 16
    assert [m.model for m in client.list().models] == ["infermeter-sim"]


def test_error_is_response_error(fast: ThreadServer) -> None:
    client = closing(ollama.Client(host=fast.url, headers={"x-sim-error": "500"}))
    with pytest.raises(ollama.ResponseError) as caught:
        client.chat(model="m", messages=MESSAGES, stream=False)
    assert caught.value.status_code == 500
    assert "x-sim-error" in caught.value.error
