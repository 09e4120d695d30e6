"""The hot path: one request relayed to the upstream and its response streamed back.

Raw ASGI, no framework: every response chunk goes to the client first, then to the tap
(DESIGN.md section 11). A watcher task per request waits for the client's
``http.disconnect`` and cancels the relay, so the upstream connection is closed at once
and the model stops generating (uvicorn's ``send`` returns silently after a disconnect).
"""

from __future__ import annotations

import asyncio
import dataclasses
import logging
from collections.abc import Awaitable, Callable, MutableMapping
from time import perf_counter_ns, time_ns
from typing import Any

import orjson

from proxy.attribution.local import Attribution
from proxy.config import Settings
from proxy.drilldown.hub import Drilldown
from proxy.forward.base import RawHeaders, Transport, UpstreamResponse
from proxy.forward.errors import UpstreamError, UpstreamReadError, UpstreamTimeout
from proxy.forward.headers import client_response_headers, header_value, upstream_request_headers
from proxy.metrics.recorder import Recorder
from proxy.quality.hub import Quality
from proxy.stream.base import RequestInfo, Tap
from proxy.stream.endpoints import CHAT_COMPLETIONS, COMPLETIONS, classify
from proxy.stream.inject import UsageStripper, add_include_usage
from proxy.stream.request import inspect_request
from proxy.stream.taps import STREAMING_FRAMINGS, framing, make_tap, read_headers
from proxy.tenants.identity import build_identity
from proxy.timing import CANCELLED, REJECTED, UPSTREAM_ERROR, RequestRecord

Scope = MutableMapping[str, Any]
Receive = Callable[[], Awaitable[MutableMapping[str, Any]]]
Send = Callable[[MutableMapping[str, Any]], Awaitable[None]]

log = logging.getLogger("infermeter.relay")

# nginx's convention for "the client closed the request before a status was sent".
CLIENT_CLOSED = 499
_NO_INFO = RequestInfo()
_OPENAI_STREAMS = frozenset({CHAT_COMPLETIONS, COMPLETIONS})
# Statuses whose responses never have a body (RFC 9110 sections 15.3.5 and 15.4.5).
_NO_BODY = frozenset({204, 304})


class StreamAborted(Exception):
    """Raised to the ASGI server after a broken upstream stream, so it drops the client
    connection instead of ending the body cleanly (which would pass a truncated
    response off as a complete one)."""


class QuietAborts(logging.Filter):
    """Drops the ASGI server's traceback for a ``StreamAborted``: the relay already logged
    it in one line, and an upstream that breaks is not a bug in the proxy."""

    def filter(self, record: logging.LogRecord) -> bool:
        return not (record.exc_info and isinstance(record.exc_info[1], StreamAborted))


class _Watch:
    __slots__ = ("done", "disconnected")

    def __init__(self) -> None:
        self.done = False
        self.disconnected = False


async def _watch_disconnect(receive: Receive, watch: _Watch, task: asyncio.Task[Any]) -> None:
    while True:
        message = await receive()
        if message["type"] == "http.disconnect":
            if not watch.done:
                watch.disconnected = True
                task.cancel()
            return


class Relay:
    def __init__(self, settings: Settings, transport: Transport, recorder: Recorder | None,
                 drilldown: Drilldown | None = None, quality: Quality | None = None,
                 attribution: Attribution | None = None) -> None:
        self.transport = transport
        # GPU time and energy per request (DESIGN.md section 14); None with metrics off.
        self.attribution = attribution
        # Response checks and evaluations (DESIGN.md section 15); None when both are off.
        self.quality = quality
        self.recorder = recorder
        self.drilldown = drilldown if drilldown is not None else Drilldown()
        # Who each request is for (DESIGN.md section 14); None when no tenant source is set.
        self.tenant = build_identity(settings.tenant_header, settings.tenant_keys)
        self.max_body = settings.max_request_bytes
        self.inject_usage = settings.inject_usage
        self.body_timeout = settings.body_timeout
        self.expose_upstream_errors = settings.expose_upstream_errors

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        rec = RequestRecord(classify(scope["path"]), perf_counter_ns(), t_wall=time_ns())
        if self.tenant is not None:
            rec.tenant = self.tenant(scope["headers"])
        recorder = self.recorder
        if recorder is not None:
            recorder.started(rec.endpoint)
        if self.attribution is not None:
            self.attribution.begin(rec)
        try:
            self.drilldown.begin(scope, rec)
            await self._relay(scope, receive, send, rec)
        finally:
            self._finish(rec)

    def _finish(self, rec: RequestRecord) -> None:
        """The request is over, whichever way: the one place its record is handed on."""
        if rec.t_end is None:
            rec.t_end = perf_counter_ns()
        # The span and the log line carry the model label the metrics went under: the
        # recorder chooses it, then the drill-down gets it with the record.
        label = self.recorder.record(rec) if self.recorder is not None else None
        if self.quality is not None:
            self.quality.finish(rec, label)
        attribution = self.attribution
        if attribution is not None and attribution.holds(rec):
            # Its log line waits for its GPU share: written when its last interval is settled.
            self.drilldown.finish(rec, label, write=False)
            attribution.end(rec)
        else:
            self.drilldown.finish(rec, label)

    def close(self) -> None:
        """Stop what the relay runs beside requests (the keys file's watcher)."""
        if self.tenant is not None:
            self.tenant.close()

    async def _relay(self, scope: Scope, receive: Receive, send: Send, rec: RequestRecord) -> None:
        if scope["method"] == "CONNECT":
            rec.outcome = REJECTED
            await self._error(send, rec, 405, "CONNECT is not supported: infermeter only relays to its configured upstream.",
                              "invalid_request_error", "method_not_allowed")
            return
        # Read before the body: an ASGI server appends a chunked body's trailers to the
        # same header list, and a trailer must never reach the upstream as a header.
        headers = upstream_request_headers(scope)
        self.drilldown.outgoing(headers, rec)
        body = await self._read_body(scope, receive, send, rec)
        if body is None:
            return
        observe = self.recorder is not None and rec.endpoint != "other"
        info = inspect_request(rec.endpoint, body, scope["path"]) if observe else _NO_INFO
        rec.request = info
        if self.quality is not None and observe:
            self.quality.begin(rec, body)
        inject = False
        if self.inject_usage and info.stream and not info.include_usage and rec.endpoint in _OPENAI_STREAMS:
            injected = add_include_usage(body)
            if injected is not None:
                body, inject = injected, True
                info = dataclasses.replace(info, include_usage=True)

        task = asyncio.current_task()
        assert task is not None
        watch = _Watch()
        watcher = asyncio.ensure_future(_watch_disconnect(receive, watch, task))
        response: UpstreamResponse | None = None
        tap: Tap | None = None
        try:
            response = await self._open(scope, headers, body, send, rec, watch)
            if response is None:
                return
            tap = self._tap(response, rec, info, observe)
            await self._stream(response, send, rec, tap, watch, inject)
        except asyncio.CancelledError:
            if not watch.disconnected:
                raise
            watch.done = True
            _uncancel(task)
            # Clients often hang up as soon as they read the finish event or [DONE]; the
            # model had finished by then, and that is not a cancellation.
            if tap is None or rec.finish_reason is None:
                rec.outcome = CANCELLED
            if rec.code == 0:
                rec.code = CLIENT_CLOSED
        finally:
            watch.done = True
            watcher.cancel()
            if response is not None:
                await response.aclose()

    async def _open(self, scope: Scope, headers: RawHeaders, body: bytes, send: Send, rec: RequestRecord,
                    watch: _Watch) -> UpstreamResponse | None:
        """Send the request upstream; on failure answer 502/504 and return None."""
        target = scope["raw_path"].decode("latin-1") if scope.get("raw_path") else scope["path"]
        if scope.get("query_string"):
            target += "?" + scope["query_string"].decode("latin-1")
        try:
            response = await self.transport.request(scope["method"], target, headers, body)
        except UpstreamError as exc:
            rec.outcome = UPSTREAM_ERROR
            rec.upstream_error = str(exc)
            watch.done = True
            await self._upstream_failed(send, rec, exc)
            return None
        rec.t_headers = perf_counter_ns()
        rec.code = response.status
        return response

    async def _upstream_failed(self, send: Send, rec: RequestRecord, exc: UpstreamError) -> None:
        """502 or 504. The upstream's address and error go to the log and the request log; a
        client sees them only if the operator opts in, as nginx and Envoy never show them."""
        log.warning("upstream failed before its response on endpoint %s: %s", rec.endpoint, exc)
        if isinstance(exc, UpstreamTimeout):
            status, code, message = 504, "upstream_timeout", "the upstream server did not answer in time"
        else:
            status, code, message = 502, "upstream_unreachable", "the upstream server could not be reached"
        await self._error(send, rec, status, str(exc) if self.expose_upstream_errors else message, "upstream_error", code)

    @staticmethod
    def _tap(response: UpstreamResponse, rec: RequestRecord, info: RequestInfo, observe: bool) -> Tap | None:
        """Decide once how the body is framed: that makes both the ``stream`` label and the tap."""
        how = framing(rec.endpoint, header_value(response.headers, b"content-type"), info)
        rec.stream = how in STREAMING_FRAMINGS
        # A compressed body cannot be read without decompressing it: relay, don't parse.
        if not observe or header_value(response.headers, b"content-encoding") not in (None, b"identity"):
            return None
        tap = make_tap(rec.endpoint, how)
        if tap is not None:
            rec.summary = tap.summary
            if rec.quality is not None:
                rec.quality.watch(tap.summary)
            read_headers(rec.endpoint, response.headers, tap.summary)
        return tap

    async def _stream(self, response: UpstreamResponse, send: Send, rec: RequestRecord, tap: Tap | None,
                      watch: _Watch, inject: bool) -> None:
        """Relay the response: each chunk to the client first, then to the tap."""
        ctype = header_value(response.headers, b"content-type") or b""
        headers = client_response_headers(response.headers)
        status = response.status
        if status in _NO_BODY:
            # uvicorn would hold a 204/304's Content-Length against the empty body it
            # must send, raise, and drop the connection with a request pipelined behind.
            headers = [(n, v) for n, v in headers if n.lower() != b"content-length"]
        stripper = None
        if inject and ctype.startswith(b"text/event-stream"):
            stripper = UsageStripper(rec.summary)
            headers = [(n, v) for n, v in headers if n.lower() != b"content-length"]
        await send({"type": "http.response.start", "status": status, "headers": headers})
        recorder = self.recorder
        last = 0
        try:
            async for chunk in response.aiter_raw():
                last = perf_counter_ns()
                if stripper is None:
                    await send({"type": "http.response.body", "body": chunk, "more_body": True})
                else:
                    out = stripper.feed(chunk)
                    if out:
                        await send({"type": "http.response.body", "body": out, "more_body": True})
                if tap is not None:
                    n = tap.feed(chunk)
                    if n and rec.tokens(n, last) and recorder is not None:
                        recorder.drain_gaps(rec)
        except UpstreamReadError as exc:
            rec.outcome = UPSTREAM_ERROR
            rec.upstream_error = str(exc)
            watch.done = True
            log.warning("upstream stream broke mid-response on endpoint %s: %s", rec.endpoint, exc)
            raise StreamAborted(str(exc)) from None
        if tap is not None:
            n = tap.close()
            if n:
                rec.tokens(n, last)
        watch.done = True
        await send({"type": "http.response.body", "body": stripper.close() if stripper else b"", "more_body": False})
        rec.t_end = perf_counter_ns()

    async def _read_body(self, scope: Scope, receive: Receive, send: Send, rec: RequestRecord) -> bytes | None:
        declared = header_value(scope["headers"], b"content-length")
        if declared is not None and declared.isdigit() and int(declared) > self.max_body:
            await self._too_large(send, rec)
            return None
        parts: list[bytes] = []
        size = 0
        while True:
            message = await _within(receive, self.body_timeout)
            if message is None:
                rec.outcome = REJECTED
                await self._error(send, rec, 408, f"no request body bytes for {self.body_timeout:g} s",
                                  "invalid_request_error", "request_timeout")
                return None
            if message["type"] == "http.disconnect":
                rec.outcome = CANCELLED
                rec.code = CLIENT_CLOSED
                return None
            chunk = message.get("body", b"")
            if chunk:
                size += len(chunk)
                if size > self.max_body:
                    await self._too_large(send, rec)
                    return None
                parts.append(chunk)
            if not message.get("more_body", False):
                return parts[0] if len(parts) == 1 else b"".join(parts)

    async def _too_large(self, send: Send, rec: RequestRecord) -> None:
        rec.outcome = REJECTED
        await self._error(send, rec, 413, f"request body exceeds the proxy's limit of {self.max_body} bytes",
                          "invalid_request_error", "request_too_large")

    @staticmethod
    async def _error(send: Send, rec: RequestRecord, status: int, message: str, kind: str, code: str) -> None:
        rec.code = status
        body = orjson.dumps({"error": {"message": message, "type": kind, "code": code}})
        await send({"type": "http.response.start", "status": status, "headers": [
            (b"content-type", b"application/json"), (b"content-length", str(len(body)).encode()),
            # The client's request body may be unread (413, 408): don't reuse the connection.
            *([(b"connection", b"close")] if status in (408, 413) else []),
        ]})
        await send({"type": "http.response.body", "body": body, "more_body": False})


async def _within(receive: Receive, timeout: float) -> MutableMapping[str, Any] | None:
    """``await receive()``, or None after ``timeout`` seconds.

    One timer, cancelled at once in the usual case (the body came with the head): not
    ``asyncio.wait_for``, which on Python < 3.12 wraps ``receive()`` in a task of its own,
    with a future and a callback besides, for every request."""
    task = asyncio.current_task()
    assert task is not None
    expired = False

    def expire() -> None:
        nonlocal expired
        expired = True
        task.cancel()

    timer = asyncio.get_running_loop().call_later(timeout, expire)
    try:
        return await receive()
    except asyncio.CancelledError:
        if not expired:
            raise
        _uncancel(task)
        return None
    finally:
        timer.cancel()


def _uncancel(task: asyncio.Task[Any]) -> None:
    # 3.11+: the cancellation was ours and is handled; don't leave it counted on the task.
    uncancel = getattr(task, "uncancel", None)
    if uncancel is not None:
        uncancel()
