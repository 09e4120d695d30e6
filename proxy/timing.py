"""Per-request timing: the relay stamps points, the recorder reads the finished record.

All stamps are ``time.perf_counter_ns()`` taken in the proxy (DESIGN.md section 5).
"""

from __future__ import annotations

from dataclasses import dataclass, field

COMPLETED = "completed"
CANCELLED = "cancelled"
UPSTREAM_ERROR = "upstream_error"
REJECTED = "rejected"


@dataclass(slots=True)
class RequestRecord:
    endpoint: str
    t_arrival: int
    model: str | None = None
    stream: bool = False
    code: int = 0
    outcome: str = COMPLETED
    t_headers: int | None = None
    t_first: int | None = None
    t_last: int | None = None
    t_end: int | None = None
    token_events: int = 0
    # Gaps between consecutive token events, ns; events that arrive in one chunk are
    # 0 apart, as the client sees them.
    gaps_ns: list[int] = field(default_factory=list)
    input_tokens: int | None = None
    output_tokens: int | None = None
    tokens_estimated: bool = False
    finish_reason: str | None = None
    parse_errors: int = 0

    def tokens(self, n: int, now: int) -> None:
        """``n`` token events completed in a chunk that arrived at ``now``."""
        if self.t_last is None:
            self.t_first = now
        else:
            self.gaps_ns.append(now - self.t_last)
        if n > 1:
            self.gaps_ns.extend([0] * (n - 1))
        self.t_last = now
        self.token_events += n

    @property
    def duration_s(self) -> float:
        return ((self.t_end or self.t_arrival) - self.t_arrival) / 1e9

    @property
    def ttft_s(self) -> float | None:
        return None if self.t_first is None else (self.t_first - self.t_arrival) / 1e9

    @property
    def tpot_s(self) -> float | None:
        n = self.output_tokens
        if self.t_first is None or self.t_last is None or n is None or n < 2:
            return None
        return (self.t_last - self.t_first) / 1e9 / (n - 1)
