"""``--workers 2 --request-log``: whole lines from every worker, into a pipe or a file.

POSIX makes a pipe write of at most PIPE_BUF bytes atomic; a larger one from two processes
may interleave with the other's, splicing one worker's line into another's (issue 18).
The proxy runs as ``infermeter serve`` in a child process; with ``-`` its standard output
is a FIFO this test reads at about 80 KB/s, as a container runtime with a slow log
shipper would, so both workers' writers wait on the full pipe side by side.
"""

from __future__ import annotations

import asyncio
import json
import os
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from tests.drilldown.test_request_log import FIELDS
from tests.support.wait import wait_for
from tests.workers.conftest import Sent, mixed_load, simulator, workers_proxy

ROUNDS = 120  # x 5 kinds of request: about 260 KB of lines, far more than the pipe holds
CHUNK = 4096
PAUSE = 0.05  # CHUNK every PAUSE: about 80 KB/s


class SlowReader:
    """Reads a FIFO in CHUNK-sized reads with a pause after each, until told to hurry."""

    def __init__(self, fd: int, held: int) -> None:
        self.fd = fd
        self.held: int | None = held
        self.data = bytearray()
        self.lock = threading.Lock()
        self.hurry = threading.Event()
        self.eof = threading.Event()
        self.thread = threading.Thread(target=self._run, name="slow-reader", daemon=True)

    def _run(self) -> None:
        while True:
            try:
                chunk = os.read(self.fd, CHUNK)
            except BlockingIOError:
                time.sleep(0.01)
                continue
            if not chunk:
                self.eof.set()
                return
            with self.lock:
                self.data.extend(chunk)
            if not self.hurry.is_set():
                time.sleep(PAUSE)

    def release(self) -> None:
        """Close the test's own write end: EOF comes once every other writer closed theirs."""
        if self.held is not None:
            os.close(self.held)
            self.held = None

    def newlines(self) -> int:
        with self.lock:
            return self.data.count(b"\n")


@contextmanager
def slow_pipe(tmp_path: Path) -> Iterator[tuple[Path, SlowReader]]:
    fifo = tmp_path / "stdout.fifo"
    os.mkfifo(fifo)
    # Opened before the child opens it for writing, so that open does not block; the
    # reader sees EOF only once every process holding the write end (all workers) closed it.
    fd = os.open(fifo, os.O_RDONLY | os.O_NONBLOCK)
    # A FIFO with no writer reads as EOF: hold a write end until the child has its own.
    held = os.open(fifo, os.O_WRONLY | os.O_NONBLOCK)
    reader = SlowReader(fd, held)
    reader.thread.start()
    try:
        yield fifo, reader
    finally:
        reader.release()
        reader.hurry.set()
        reader.thread.join(timeout=30)
        os.close(fd)


def test_lines_from_two_workers_stay_whole_in_a_slow_pipe(tmp_path: Path) -> None:
    with simulator("--ttft", "0.005", "--tbt", "0.002", "--output-tokens", "4") as sim, \
         slow_pipe(tmp_path) as (fifo, reader):
        # The child's stderr shares the FIFO (the helper sends both to ``log``): only
        # critical messages, so what the pipe carries is the request log.
        with workers_proxy(sim.url, 2, "--request-log", "-", "--log-level", "critical", log=fifo) as proxy:
            reader.release()
            sent = Sent()
            asyncio.run(mixed_load(proxy.url, ROUNDS, 16, sent))
            assert not sent.failed, sent.failed[:3]
            total = len(sent.ok)
            # Still slow: the workers' writers stay blocked on the full pipe, side by side.
            wait_for(lambda: reader.newlines() >= total, f"{total} lines through the pipe", timeout=60)
        # Stopping the proxy closed every write end: the rest (there should be none) follows.
        reader.hurry.set()
        assert reader.eof.wait(30), "the workers kept the pipe open"
    _assert_whole_lines(bytes(reader.data), total)


def test_lines_from_two_workers_stay_whole_in_one_file(tmp_path: Path) -> None:
    # Each worker opens the file for appending and writes a batch at once: a file write
    # is not interleaved with another, whatever its size.
    path = tmp_path / "requests.jsonl"
    with simulator("--ttft", "0.005", "--tbt", "0.002", "--output-tokens", "4") as sim, \
         workers_proxy(sim.url, 2, "--request-log", str(path), log=tmp_path / "proxy.log") as proxy:
        sent = Sent()
        asyncio.run(mixed_load(proxy.url, ROUNDS, 16, sent))
        assert not sent.failed, sent.failed[:3]
        total = len(sent.ok)
        wait_for(lambda: path.read_bytes().count(b"\n") >= total, f"{total} lines in the file", timeout=60)
    _assert_whole_lines(path.read_bytes(), total)


def _assert_whole_lines(data: bytes, total: int) -> None:
    assert data.endswith(b"\n")
    lines = data.split(b"\n")[:-1]
    bad = []
    ids = []
    for raw in lines:
        try:
            parsed = json.loads(raw)
        except ValueError:
            parsed = None
        # A fragment of a spliced line may itself parse (a number, a short object).
        if isinstance(parsed, dict) and set(parsed) == FIELDS:
            ids.append(parsed["request_id"])
        else:
            bad.append(raw[:200])
    assert not bad, f"{len(bad)} of {len(lines)} lines are not whole log lines, e.g. {bad[:2]}"
    assert len(lines) == total
    expected = {f"req-{kind}-{i}" for i in range(ROUNDS) for kind in ("chat", "cancel", "completion", "embedding",
                                                                         "models")}
    assert sorted(ids) == sorted(expected)
