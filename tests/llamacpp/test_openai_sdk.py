"""The openai SDK gets the same answer through the proxy as from llama-server directly."""

from __future__ import annotations

import openai
import pytest
from openai.types.chat import ChatCompletionMessageParam

from tests.support.servers import ChildProcess

from .client import CHAT_MESSAGES, COMPLETION_PROMPT
from .conftest import MODEL_ALIAS, LlamaServer
from tests.support.metrics import after_requests, scrape
from tests.support.sdk import closing

pytestmark = pytest.mark.llamacpp

# Greedy with a seed, and no prompt cache: llama-server documents that reusing a cached
# prompt can make results nondeterministic, and the two requests must be computed alike.
TEMPERATURE, SEED, MAX_TOKENS = 0, 42, 32
NO_CACHE = {"cache_prompt": False}
MESSAGES: list[ChatCompletionMessageParam] = [{"role": "user", "content": CHAT_MESSAGES[0]["content"]}]


def _client(base_url: str) -> openai.OpenAI:
    return closing(openai.OpenAI(base_url=base_url + "/v1", api_key="not-needed", max_retries=0, timeout=60))


def _chat(base_url: str, stream: bool) -> str:
    create = _client(base_url).chat.completions.create
    if not stream:
        reply = create(
            model=MODEL_ALIAS,
            messages=MESSAGES,
            temperature=TEMPERATURE,
            seed=SEED,
            max_tokens=MAX_TOKENS,
            extra_body=NO_CACHE,
        )
        return reply.choices[0].message.content or ""
    chunks = create(
        model=MODEL_ALIAS,
        messages=MESSAGES,
        stream=True,
        temperature=TEMPERATURE,
        seed=SEED,
        max_tokens=MAX_TOKENS,
        extra_body=NO_CACHE,
    )
    return "".join(c.choices[0].delta.content or "" for c in chunks if c.choices)


def _completion(base_url: str, stream: bool) -> str:
    create = _client(base_url).completions.create
    if not stream:
        reply = create(
            model=MODEL_ALIAS,
            prompt=COMPLETION_PROMPT,
            temperature=TEMPERATURE,
            seed=SEED,
            max_tokens=MAX_TOKENS,
            extra_body=NO_CACHE,
        )
        return reply.choices[0].text
    chunks = create(
        model=MODEL_ALIAS,
        prompt=COMPLETION_PROMPT,
        stream=True,
        temperature=TEMPERATURE,
        seed=SEED,
        max_tokens=MAX_TOKENS,
        extra_body=NO_CACHE,
    )
    return "".join(c.choices[0].text for c in chunks if c.choices)


@pytest.mark.parametrize("stream", [False, True], ids=["json", "stream"])
@pytest.mark.parametrize("endpoint", ["chat_completions", "completions"])
def test_content_through_proxy_equals_direct(
    llama_server: LlamaServer, proxy: ChildProcess, endpoint: str, stream: bool
) -> None:
    call = _chat if endpoint == "chat_completions" else _completion
    before = scrape(proxy.url)
    direct = call(llama_server.url, stream)
    proxied = call(proxy.url, stream)
    after = after_requests(proxy.url, before, 1)

    assert len(direct.split()) >= 5, f"the model said too little to compare: {direct!r}"
    assert proxied == direct
    recorded = (after - before).get(
        "infermeter_requests_total", endpoint=endpoint, model=MODEL_ALIAS, code="200", outcome="completed"
    )
    assert recorded == 1, [
        (dict(labels), value - before.samples.get((name, labels), 0))
        for (name, labels), value in after.samples.items()
        if name == "infermeter_requests_total" and value != before.samples.get((name, labels), 0)
    ]
