"""``--request-log PATH|-``: one JSON object per line per relayed request.

The relay hands the finished record to a bounded queue (one ``put_nowait``); a writer
thread turns records into lines and writes them in batches. A queue that is full (a disk
or pipe that cannot keep up) drops the line and counts it: a stream never waits for its
log line. The schema is in docs/drilldown.md; no prompt, completion, header value or
query string ever enters a line (the path is ASGI's ``path``, which has no query).

Whole lines, also with ``--workers``: every worker writes to the same file or pipe. POSIX
makes a pipe write of at most PIPE_BUF bytes atomic, and a larger one from two processes
may interleave with the other's (a worker's line spliced into another's, issue 18). So no
line is longer than PIPE_BUF (a longer one has its strings cut, and says so), and to
anything but a regular file a batch goes out in line-aligned writes of at most PIPE_BUF.
A regular file takes a batch in one write: a file write is never interleaved with another.
"""

from __future__ import annotations

import logging
import os
import queue
import select
import stat
import sys
import threading
import time
from typing import Any

import orjson

from proxy.config import ConfigError
from proxy.metrics.definitions import RequestLogMetrics
from proxy.timing import RequestRecord
from proxy.trouble import Trouble

log = logging.getLogger("infermeter.request_log")

# Lines written per batch at most: to a file a burst is one write, not thousands.
_BATCH = 512
_STOP = object()
# The longest write to a pipe that POSIX keeps whole (4096 on Linux); no line is longer.
LINE_MAX = select.PIPE_BUF
# A line over LINE_MAX keeps this many characters of each string at first, then half as
# many until it fits: the other fields are numbers, booleans and short closed-set names.
_CUT_FROM = 1024


def rfc3339(wall_ns: int) -> str:
    seconds, ns = divmod(wall_ns, 1_000_000_000)
    return time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(seconds)) + f".{ns // 1000:06d}Z"


def _round(value: float | None) -> float | None:
    # Microseconds: the stamps' resolution that matters, and short lines.
    return None if value is None else round(value, 6)


def line(rec: RequestRecord) -> dict[str, Any]:
    """The log line of a finished request (docs/drilldown.md lists the fields)."""
    fields: dict[str, Any] = {
        "time": rfc3339(rec.t_wall),
        "request_id": rec.request_id,
        "trace_id": rec.trace_id,
        "span_id": rec.span_id,
        "method": rec.method,
        "path": rec.path,
        "endpoint": rec.endpoint,
        "model": rec.model_label if rec.model_label is not None else rec.model,
        # Who it was for (DESIGN.md section 14): the tenant itself, not its capped label.
        "tenant": rec.tenant,
        "status": rec.code,
        "outcome": rec.outcome,
        "stream": rec.stream,
        "ttft_s": _round(rec.ttft_s),
        "tpot_s": _round(rec.tpot_s),
        "duration_s": _round(rec.duration_s),
        "upstream_headers_s": _round(rec.headers_s),
        "input_tokens": rec.input_tokens,
        "output_tokens": rec.output_tokens,
        "tokens_estimated": rec.tokens_estimated,
        "finish_reason": rec.finish_reason,
        # The response checks it failed ([] when it passed them all; null when not checked).
        "checks_failed": rec.checks_failed,
        # What went wrong upstream (null when nothing did): its address and the error.
        "upstream_error": rec.upstream_error,
    }
    # GPU time and energy attributed to it (docs/attribution.md); absent when no GPU is read.
    if rec.gpu_seconds is not None and rec.energy_joules is not None:
        fields["gpu_seconds"] = round(rec.gpu_seconds, 6)
        fields["energy_joules"] = round(rec.energy_joules, 6)
    return fields


def encode(item: RequestRecord | dict[str, Any]) -> bytes:
    """A record's line (or an event's, given as a dict) as written: JSON and a newline, at
    most LINE_MAX bytes."""
    fields = item if isinstance(item, dict) else line(item)
    data = orjson.dumps(fields, option=orjson.OPT_APPEND_NEWLINE)
    if len(data) <= LINE_MAX:
        return data
    # Only strings a client, a server or a judge chose can make it this long (a path of
    # a few KB): cut them and mark the line, rather than split it over several writes.
    fields = {**fields, "truncated": True}
    keep = _CUT_FROM
    while True:
        data = orjson.dumps({k: v[:keep] if isinstance(v, str) else v for k, v in fields.items()},
                            option=orjson.OPT_APPEND_NEWLINE)
        if len(data) <= LINE_MAX or keep == 0:
            return data
        keep //= 2


def writes(lines: list[bytes], limit: int | None) -> list[list[bytes]]:
    """``lines`` in consecutive runs of at most ``limit`` bytes each (no limit: one run)."""
    if limit is None:
        return [lines]
    runs: list[list[bytes]] = []
    run: list[bytes] = []
    size = 0
    for data in lines:
        if size + len(data) > limit and run:
            runs.append(run)
            run, size = [], 0
        run.append(data)
        size += len(data)
    if run:
        runs.append(run)
    return runs


class RequestLog:
    def __init__(self, target: str, metrics: RequestLogMetrics, queue_size: int) -> None:
        self.target = "standard output" if target == "-" else target
        if target == "-":
            self.fd = sys.stdout.fileno()
            self._own_fd = False
        else:
            try:
                # O_APPEND: each batch lands whole at the end, and logrotate's copytruncate works.
                self.fd = os.open(target, os.O_WRONLY | os.O_CREAT | os.O_APPEND | os.O_CLOEXEC, 0o640)
            except OSError as exc:
                raise ConfigError(f"--request-log: cannot open {target}: {exc.strerror}") from None
            self._own_fd = True
        # Pipes, FIFOs, sockets and terminals may be shared with other writers (the other
        # workers): whole lines in writes POSIX keeps atomic.
        self.write_limit = None if stat.S_ISREG(os.fstat(self.fd).st_mode) else LINE_MAX
        self.queue: queue.Queue[Any] = queue.Queue(queue_size)
        self.written = metrics.lines
        self.full = Trouble(log, metrics.dropped.labels("queue_full"))
        self.failing = Trouble(log, metrics.dropped.labels("write_failed"))
        self.thread = threading.Thread(target=self._run, name="infermeter-request-log", daemon=True)
        self.thread.start()

    def put_event(self, event: dict[str, Any]) -> None:
        """Queue a line that is not a request's (a judge's verdict, ``{\"event\": \"eval\", ...}``)."""
        self.put(event)  # type: ignore[arg-type]  # _write tells the two apart

    def put(self, rec: RequestRecord) -> None:
        """Queue the finished record's line; drop and count it when the writer is behind."""
        try:
            self.queue.put_nowait(rec)
        except queue.Full:
            self.full.hit(True, "request log %s cannot keep up: dropping lines, counted in "
                          "infermeter_request_log_dropped_total", self.target)
            return
        if self.full.state is not None:  # per request, on the event loop: test before calling
            self.full.clear("request log %s keeps up again", self.target)

    def _run(self) -> None:
        get, get_nowait = self.queue.get, self.queue.get_nowait
        while True:
            item = get()
            batch = []
            stop = item is _STOP
            if not stop:
                batch.append(item)
            while not stop and len(batch) < _BATCH:
                try:
                    item = get_nowait()
                except queue.Empty:
                    break
                if item is _STOP:
                    stop = True
                else:
                    batch.append(item)
            if batch:
                self._write(batch)
            if stop:
                return

    def _write(self, batch: list[RequestRecord]) -> None:
        runs = writes([encode(item) for item in batch], self.write_limit)
        done = 0
        try:
            for run in runs:
                view = memoryview(b"".join(run))
                while view:
                    view = view[os.write(self.fd, view):]
                done += len(run)
        except OSError as exc:
            # The run that failed and every later one: a pipe whose reader left or a full
            # disk would refuse them too.
            self.written.inc(done)
            self.failing.hit(True, "request log %s: write failed (%s): dropping lines, counted in "
                             "infermeter_request_log_dropped_total", self.target, exc.strerror, n=len(batch) - done)
            return
        self.written.inc(len(batch))
        self.failing.clear("request log %s: writes work again", self.target)

    def close(self, timeout: float) -> None:
        """Write what is queued (at most ``timeout`` seconds), then close the file."""
        try:
            self.queue.put(_STOP, timeout=timeout)
        except queue.Full:
            return
        self.thread.join(timeout)
        if self._own_fd and not self.thread.is_alive():
            os.close(self.fd)
