"""The official openai SDK parses every OpenAI endpoint the simulator serves."""

from __future__ import annotations

import base64
import struct

import openai
import pytest

from tests.support.servers import ThreadServer
from tests.support.sdk import closing


@pytest.fixture
def client(fast: ThreadServer) -> openai.OpenAI:
    return closing(openai.OpenAI(base_url=fast.url + "/v1", api_key="sk-test", max_retries=0))


def test_chat_stream_with_usage(client: openai.OpenAI) -> None:
    stream = client.chat.completions.create(
        model="my-model", messages=[{"role": "user", "content": "say four words"}], stream=True,
        stream_options={"include_usage": True})
    chunks = list(stream)
    assert chunks[0].choices[0].delta.role == "assistant"
    text = "".join(c.choices[0].delta.content or "" for c in chunks if c.choices)
    assert len(text.split()) == 8
    finish = [c.choices[0].finish_reason for c in chunks if c.choices and c.choices[0].finish_reason]
    assert finish == ["stop"]
    assert chunks[-1].choices == []
    assert chunks[-1].usage is not None
    assert (chunks[-1].usage.prompt_tokens, chunks[-1].usage.completion_tokens) == (3, 8)
    assert all(c.model == "my-model" for c in chunks)


def test_chat_stream_without_usage_has_none(client: openai.OpenAI) -> None:
    chunks = list(client.chat.completions.create(
        model="m", messages=[{"role": "user", "content": "hi"}], stream=True))
    assert all(c.usage is None for c in chunks)
    assert all(c.choices for c in chunks)


def test_chat_non_stream_and_max_tokens(client: openai.OpenAI) -> None:
    reply = client.chat.completions.create(
        model="m", messages=[{"role": "system", "content": "be brief"}, {"role": "user", "content": "a b c"}],
        max_tokens=5)
    assert reply.choices[0].finish_reason == "length"
    assert reply.choices[0].message.role == "assistant"
    assert len((reply.choices[0].message.content or "").split()) == 5
    assert reply.usage is not None
    assert (reply.usage.prompt_tokens, reply.usage.completion_tokens, reply.usage.total_tokens) == (5, 5, 10)


def test_completions_stream_and_whole(client: openai.OpenAI) -> None:
    chunks = list(client.completions.create(model="m", prompt="one two", stream=True, max_tokens=3))
    assert sum(1 for c in chunks if c.choices[0].text) == 3
    assert chunks[-1].choices[0].finish_reason == "length"
    reply = client.completions.create(model="m", prompt="one two")
    assert reply.choices[0].finish_reason == "stop"
    assert reply.usage is not None and reply.usage.completion_tokens == 8
    # Same seed, same text: the stream is the start of the whole answer.
    assert reply.choices[0].text.startswith("".join(c.choices[0].text for c in chunks))


def test_responses_stream_events(client: openai.OpenAI) -> None:
    events = list(client.responses.create(model="m", input="tell me", instructions="be kind", stream=True))
    kinds = [e.type for e in events]
    assert kinds[:4] == ["response.created", "response.in_progress", "response.output_item.added",
                         "response.content_part.added"]
    assert kinds.count("response.output_text.delta") == 8
    assert kinds[-4:] == ["response.output_text.done", "response.content_part.done", "response.output_item.done",
                          "response.completed"]
    assert [e.sequence_number for e in events] == list(range(len(events)))
    final = events[-1].response  # type: ignore[union-attr]
    assert final.usage is not None
    assert (final.usage.input_tokens, final.usage.output_tokens) == (4, 8)


def test_responses_stream_helper_accumulates(client: openai.OpenAI) -> None:
    with client.responses.stream(model="m", input="hello") as stream:
        deltas = [e.delta for e in stream if e.type == "response.output_text.delta"]
        final = stream.get_final_response()
    assert final.output_text == "".join(deltas)
    assert final.status == "completed"


def test_responses_cut_short_is_incomplete(client: openai.OpenAI) -> None:
    events = list(client.responses.create(model="m", input="x", stream=True, max_output_tokens=2))
    assert events[-1].type == "response.incomplete"
    reply = client.responses.create(model="m", input="x", max_output_tokens=2)
    assert reply.status == "incomplete"
    assert reply.incomplete_details is not None and reply.incomplete_details.reason == "max_output_tokens"
    assert reply.usage is not None and reply.usage.output_tokens == 2


def test_responses_whole(client: openai.OpenAI) -> None:
    reply = client.responses.create(model="m", input=[{"role": "user", "content": "a b c"}])
    assert reply.status == "completed"
    assert len(reply.output_text.split()) == 8
    assert reply.usage is not None and reply.usage.input_tokens == 3


def test_embeddings(client: openai.OpenAI) -> None:
    reply = client.embeddings.create(model="e", input=["one two three", "four"], encoding_format="float",
                                     dimensions=12)
    assert [d.index for d in reply.data] == [0, 1]
    assert all(len(d.embedding) == 12 for d in reply.data)
    assert abs(sum(v * v for v in reply.data[0].embedding) - 1.0) < 1e-6
    assert reply.usage.prompt_tokens == 4


def test_embeddings_base64_is_float32(client: openai.OpenAI) -> None:
    # Asked for explicitly, the SDK hands back the base64 text undecoded.
    raw = client.embeddings.create(model="e", input="four", encoding_format="base64", dimensions=12)
    floats = client.embeddings.create(model="e", input="four", encoding_format="float", dimensions=12)
    decoded = struct.unpack("<12f", base64.b64decode(raw.data[0].embedding))  # type: ignore[arg-type]
    assert decoded == pytest.approx(floats.data[0].embedding, abs=1e-6)


def test_embeddings_sdk_default(client: openai.OpenAI) -> None:
    # The SDK asks for base64 unless told otherwise and decodes it itself.
    reply = client.embeddings.create(model="e", input="same text")
    again = client.embeddings.create(model="e", input="same text", encoding_format="float")
    assert reply.data[0].embedding == pytest.approx(again.data[0].embedding, abs=1e-6)


def test_models(client: openai.OpenAI) -> None:
    assert [m.id for m in client.models.list()] == ["infermeter-sim"]


def test_error_override_raises_sdk_errors(fast: ThreadServer) -> None:
    client = closing(openai.OpenAI(base_url=fast.url + "/v1", api_key="sk-test", max_retries=0,
                           default_headers={"x-sim-error": "429"}))
    with pytest.raises(openai.RateLimitError) as caught:
        client.chat.completions.create(model="m", messages=[{"role": "user", "content": "hi"}], stream=True)
    assert "x-sim-error" in str(caught.value)
    client = client.with_options(default_headers={"x-sim-error": "503"})
    with pytest.raises(openai.InternalServerError):
        client.completions.create(model="m", prompt="x")
