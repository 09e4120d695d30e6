"""The contract between the relay and the stream taps.

A tap watches the response bytes of one request after they were sent to the client.
It never changes or holds them: ``feed`` gets each chunk as it went by and returns how
many token events (DESIGN.md section 3) completed inside it, so the relay can stamp
them with the chunk's arrival time. Everything else a tap learns (model, exact usage,
finish reason, parse errors) it keeps in the ``StreamSummary`` it exposes.

Taps are pure: no clocks, no I/O, no metrics. Any split of the same bytes into chunks
yields the same total events and the same summary.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, Protocol

# The closed set of finish reasons (DESIGN.md section 6).
FINISH_REASONS = ("stop", "length", "tool_calls", "content_filter", "error", "other")
# The closed set of phases a server may report for a request (DESIGN.md section 13), in
# the order they happen: waiting in its queue, loading the model, the prompt, the output.
PHASES = ("queue", "load", "prefill", "decode")


@dataclass(slots=True)
class StreamSummary:
    model: str | None = None
    # Exact counts reported by the server; None when the server did not say.
    input_tokens: int | None = None
    output_tokens: int | None = None
    # Token events seen (one event may carry several tokens).
    token_events: int = 0
    finish_reason: str | None = None  # one of FINISH_REASONS
    parse_errors: int = 0
    # Subsets the server reported: prompt tokens served from its prefix cache (of input),
    # reasoning tokens (of output); None when it did not say.
    cached_input_tokens: int | None = None
    reasoning_output_tokens: int | None = None
    # Seconds the server itself says each phase took, keyed by PHASES; None when it
    # reported none.
    phases: dict[str, float] | None = None
    # The server stated an input count no server could mean: a cached count can no longer
    # be held to the input, so none is kept for this request (proxy/stream/fields.py).
    input_rejected: bool = False
    # Called with every object the format parsed (a chunk, an event, a body) when something
    # watches the answer's content: the response checks (DESIGN.md section 15, proxy/quality).
    # None when nothing does: then it costs one attribute test per parsed object.
    observer: Callable[[Any], None] | None = None


@dataclass(frozen=True, slots=True)
class RequestInfo:
    """What the proxy read from the client's request body."""

    model: str | None = None
    stream: bool = False
    include_usage: bool = False
    # Sampling parameters, for the request's span (DESIGN.md section 12); None when absent.
    max_tokens: int | None = None
    temperature: float | None = None
    top_p: float | None = None
    # What the request asked of the answer (JSON output, tools): a proxy.quality.expect.Expect,
    # None when nothing checkable (DESIGN.md section 15).
    expect: Any = None


class Tap(Protocol):
    summary: StreamSummary

    def feed(self, chunk: bytes) -> int:
        """Consume one chunk of response bytes; return the token events completed in it."""

    def close(self) -> int:
        """The body ended: flush any trailing partial event; return token events completed."""
