"""Credentials reach the upstream and nothing else: no log record at any level, no metric.

Every logger in the process is opened to every level (uvicorn's at TRACE) while requests
with secrets go through the relay's success and failure paths, on both upstream clients.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable, Iterator

import httpx
import pytest

from tests.faults.probes import Relayed
from tests.faults.rawclient import CHAT
from tests.support.scripted_upstream import EVENT, SSE_HEAD, Conn, RawUpstream, chunk
from tests.support.servers import free_port

StartRelay = Callable[..., Relayed]

SECRETS = {
    "Authorization": "Bearer sk-live-AUTHSECRET-7f3a9c",
    "api-key": "azure-APIKEYSECRET-51d2",
    "x-api-key": "anthropic-XAPISECRET-88e1",
}
METRICS_TOKEN = "metrics-TOKENSECRET-4b7e"


class _Everything(logging.Handler):
    def __init__(self) -> None:
        super().__init__(level=1)
        self.setFormatter(logging.Formatter("%(name)s %(levelname)s %(message)s"))
        self.lines: list[str] = []

    def emit(self, record: logging.LogRecord) -> None:
        self.lines.append(self.format(record))  # the formatter adds any traceback


def _loggers() -> list[logging.Logger]:
    return [logging.getLogger()] + [logging.getLogger(name) for name in list(logging.root.manager.loggerDict)]


def _open_all(handler: logging.Handler) -> None:
    for lg in _loggers():
        lg.setLevel(1)
        lg.disabled = False
        if handler not in lg.handlers:
            lg.addHandler(handler)


@pytest.fixture
def all_logs() -> Iterator[_Everything]:
    handler = _Everything()
    saved = [(lg, lg.level, lg.disabled) for lg in _loggers()]
    _open_all(handler)
    try:
        yield handler
    finally:
        for lg in _loggers():
            lg.removeHandler(handler)
        for lg, level, disabled in saved:
            lg.setLevel(level)
            lg.disabled = disabled


def _stream_then_reset(conn: Conn) -> None:
    conn.read_request()
    conn.send(SSE_HEAD + chunk(EVENT))
    time.sleep(0.05)
    conn.reset()


def _slow(conn: Conn) -> None:
    conn.read_request()
    conn.send(SSE_HEAD + chunk(EVENT))
    conn.closed_by_peer(5)


def _post(url: str, **kwargs: object) -> httpx.Response:
    return httpx.post(url + "/v1/chat/completions", json=CHAT, headers=SECRETS, timeout=10, **kwargs)  # type: ignore[arg-type]


@pytest.mark.parametrize("client", ["native", "httpx"])
def test_secrets_reach_upstream_but_never_logs_or_metrics(relay: StartRelay, all_logs: _Everything, client: str) -> None:
    options = {"log_level": "trace"}
    with RawUpstream(lambda c: None, _stream_then_reset, _slow) as up:
        r = relay(up.url, upstream_client=client, read_timeout=0.3, metrics_token=METRICS_TOKEN, log_level="debug",
                  max_request_bytes=4096, server_options=options)
        _open_all(all_logs)  # uvicorn configured its loggers as the relay started
        assert _post(r.url).status_code == 502                  # upstream closes before answering
        with pytest.raises(httpx.HTTPError):
            _post(r.url)                                          # breaks mid-stream
        with pytest.raises(httpx.HTTPError):
            _post(r.url)                                          # stalls past the read timeout
        assert _post(r.url).status_code == 200                  # a whole stream
        assert httpx.post(r.url + "/v1/chat/completions", content=b"x" * 5000, headers=SECRETS).status_code == 413
        with httpx.stream("POST", r.url + "/v1/chat/completions", json=CHAT, headers=SECRETS) as cancelled:
            next(cancelled.iter_raw())                          # the client leaves mid-stream
        metrics = httpx.get(r.url + "/metrics", headers={"Authorization": f"Bearer {METRICS_TOKEN}"})
        refused = httpx.get(r.url + "/metrics", headers=SECRETS)
        up.wait_finished(5)
    dead = relay(f"http://127.0.0.1:{free_port()}", upstream_client=client, log_level="debug", server_options=options)
    assert _post(dead.url).status_code == 502
    assert metrics.status_code == 200 and refused.status_code == 401
    # Every credential did reach the upstream, on every request that got there.
    relayed = [req for req in up.requests if req.startswith(b"POST")]
    assert len(relayed) >= 4
    for request in relayed:
        for value in SECRETS.values():
            assert value.encode() in request
    logs = "\n".join(all_logs.lines)
    # The capture saw the chattiest levels and the failures above, just not their secrets.
    assert " TRACE " in logs and "infermeter.relay WARNING" in logs
    for value in [*SECRETS.values(), METRICS_TOKEN]:
        token = value.split()[-1]
        assert token not in logs
        assert token not in metrics.text
