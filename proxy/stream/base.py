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

from dataclasses import dataclass
from typing import Protocol

# The closed set of finish reasons (DESIGN.md section 6).
FINISH_REASONS = ("stop", "length", "tool_calls", "content_filter", "error", "other")


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


@dataclass(frozen=True, slots=True)
class RequestInfo:
    """What the proxy read from the client's request body."""

    model: str | None = None
    stream: bool = False
    include_usage: bool = False


class Tap(Protocol):
    summary: StreamSummary

    def feed(self, chunk: bytes) -> int:
        """Consume one chunk of response bytes; return the token events completed in it."""

    def close(self) -> int:
        """The body ended: flush any trailing partial event; return token events completed."""
