"""``--metrics-token``: /metrics answers only with the bearer token, on either port."""

from __future__ import annotations

from collections.abc import Callable

import httpx

from tests.faults.probes import Relayed
from tests.support.servers import ThreadServer

StartRelay = Callable[..., Relayed]
TOKEN = "s3cret-metrics-token"


def _status(url: str, auth: str | None) -> int:
    headers = {"Authorization": auth} if auth is not None else {}
    return httpx.get(url + "/metrics", headers=headers, timeout=5).status_code


def test_metrics_token_on_the_relay_port(relay: StartRelay, sim: ThreadServer) -> None:
    r = relay(sim.url, metrics_token=TOKEN)
    assert _status(r.url, None) == 401
    assert _status(r.url, "Bearer wrong") == 401
    assert _status(r.url, TOKEN) == 401
    assert _status(r.url, f"Basic {TOKEN}") == 401
    assert _status(r.url, f"Bearer {TOKEN}x") == 401
    unauthorized = httpx.get(r.url + "/metrics")
    assert unauthorized.headers["www-authenticate"].startswith("Bearer")
    assert "infermeter_" not in unauthorized.text
    ok = httpx.get(r.url + "/metrics", headers={"Authorization": f"Bearer {TOKEN}"})
    assert ok.status_code == 200 and "infermeter_requests_in_flight" in ok.text
    # The token guards /metrics only: health and the relay need none.
    assert httpx.get(r.url + "/healthz").status_code == 200
    assert httpx.get(r.url + "/v1/models").status_code == 200


def test_the_scheme_is_case_insensitive(relay: StartRelay, sim: ThreadServer) -> None:
    # RFC 9110 section 11.1: the auth-scheme is case-insensitive, the token is not.
    r = relay(sim.url, metrics_token=TOKEN)
    for scheme in ("bearer", "BEARER", "bEaReR"):
        assert _status(r.url, f"{scheme} {TOKEN}") == 200, scheme
    assert _status(r.url, f"bearer {TOKEN.upper()}") == 401
    assert _status(r.url, f"bearer{TOKEN}") == 401


def test_metrics_token_on_its_own_port(relay: StartRelay, sim: ThreadServer) -> None:
    r = relay(sim.url, metrics_token=TOKEN, metrics_port=1)
    with ThreadServer(r.sidecar.metrics_app) as side:
        assert _status(side.url, None) == 401
        assert _status(side.url, f"Bearer {TOKEN}") == 200
    # With its own port, /metrics on the relay port is the upstream's path, relayed.
    relayed = httpx.get(r.url + "/metrics", headers={"Authorization": f"Bearer {TOKEN}"})
    assert "infermeter_" not in relayed.text and relayed.status_code == httpx.get(sim.url + "/metrics").status_code
