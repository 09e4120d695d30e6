"""Run one client call directly and through the proxy; the results must match."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from tests.formats.conftest import Route
from tests.formats.expect import scrub
from tests.support.metrics import Delta, measured


def through(route: Route, call: Callable[[str], Any]) -> tuple[Any, Delta]:
    """``call(base_url)`` against the upstream, then through the proxy.

    Returns the proxied result and the metrics the proxied call added, after checking
    that the client got the same thing both ways (volatile fields aside).
    """
    direct = call(route.direct)
    relayed, delta = measured(route.proxied, lambda: call(route.proxied))
    assert relayed, "the client got nothing: the comparison would prove nothing"
    assert scrub(relayed) == scrub(direct)
    return relayed, delta
