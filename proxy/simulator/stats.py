"""Counters the simulator keeps about itself, so tests can see what it noticed."""

from __future__ import annotations

from dataclasses import asdict, dataclass


@dataclass(slots=True)
class SimStats:
    """Counts of model requests (generation and embeddings; not /health, /v1/models...).

    ``requests``: received. ``active``: in progress now, queued ones included.
    ``queued``: waiting for a slot now. ``completed``: answered in full. ``cancelled``:
    the client left first (generation stopped at once). ``errors``: answered with an
    error status (injected or a bad request). ``max_active``: the highest ``active``.
    """

    requests: int = 0
    active: int = 0
    queued: int = 0
    completed: int = 0
    cancelled: int = 0
    errors: int = 0
    max_active: int = 0

    def as_dict(self) -> dict[str, int]:
        return asdict(self)
