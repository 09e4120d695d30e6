"""One model request as the simulator plans it, and the contract every wire format meets."""

from __future__ import annotations

import time
from dataclasses import dataclass, field
from typing import Any, Protocol

import orjson

from proxy.simulator.scripted import ScriptedText
from proxy.simulator.tokens import Vocabulary


@dataclass(slots=True)
class Job:
    """What to generate for one request, and when its milestones happened.

    ``finish`` is ``"length"`` when a request cap (max_tokens and kin) cut the natural
    output length, else ``"stop"``. Times are on the event loop's clock, in seconds.
    """

    model: str
    rid: str
    stream: bool
    input_tokens: int
    output_tokens: int
    finish: str
    cap: int | None
    body: dict[str, Any]
    vocab: Vocabulary | ScriptedText
    created: int = field(default_factory=lambda: int(time.time()))
    t_arrival: float = 0.0
    t_start: float = 0.0
    t_first: float = 0.0
    t_last: float = 0.0
    model_json: bytes = b""
    # Prompt tokens served from the prompt cache, and seconds spent loading the model.
    cached_tokens: int = 0
    load: float = 0.0

    def __post_init__(self) -> None:
        self.model_json = orjson.dumps(self.model)

    @property
    def truncated(self) -> bool:
        return self.finish == "length"

    def text(self) -> str:
        return self.vocab.joined(self.output_tokens)


class Format(Protocol):
    """One API's framing of a generation. Each method returns ready-to-send bytes.

    A stream is ``head()`` (events before the first token; may be empty), one
    ``token(i)`` per token, each a single event carrying exactly that token and sent on
    its own, then ``tail()`` (finish, usage, terminator). ``whole()`` is the
    non-streaming answer.
    """

    stream_content_type: bytes

    def head(self) -> bytes: ...

    def token(self, i: int) -> bytes: ...

    def tail(self, now: float) -> bytes: ...

    def whole(self, now: float) -> bytes: ...
