"""CPU per streamed chunk of each upstream transport, side by side in one run.

A child process serves chunked SSE streams (one small chunk per write, paced, so each
arrives in its own read as a token stream does); this process reads them through each
transport in turn, interleaved over several rounds, and reports its own CPU time per
chunk. A bare asyncio protocol that only counts bytes gives the event loop's floor.

    python bench/transport_micro.py                # 64 streams x 200 chunks, uvloop
    python bench/transport_micro.py --loop asyncio --streams 100 --chunks 50
"""

from __future__ import annotations

import argparse
import asyncio
import multiprocessing
import os
import socket
import statistics
import sys
import time
from collections.abc import Awaitable, Callable
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from proxy.forward.base import Transport  # noqa: E402
from proxy.forward.httpx_transport import HttpxTransport  # noqa: E402
from proxy.forward.native import NativeTransport  # noqa: E402

EVENT = b'data: {"id":"chatcmpl-1","object":"chat.completion.chunk","choices":[{"index":0,"delta":{"content":" token"}}]}\n\n'
FRAME = b"%x\r\n%s\r\n" % (len(EVENT), EVENT)


def _new_loop(kind: str) -> asyncio.AbstractEventLoop:
    if kind == "uvloop":
        import uvloop

        return uvloop.new_event_loop()
    return asyncio.new_event_loop()


# -- upstream (child process) ------------------------------------------------------------


def _serve(sock: socket.socket, chunks: int, interval: float, loop_kind: str) -> None:
    async def handle(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        try:
            while True:
                head = await reader.readuntil(b"\r\n\r\n")
                length = 0
                for line in head.split(b"\r\n"):
                    if line.lower().startswith(b"content-length:"):
                        length = int(line.split(b":", 1)[1])
                if length:
                    await reader.readexactly(length)
                writer.write(b"HTTP/1.1 200 OK\r\nContent-Type: text/event-stream\r\nTransfer-Encoding: chunked\r\n\r\n")
                for _ in range(chunks):
                    await asyncio.sleep(interval)
                    writer.write(FRAME)
                writer.write(b"0\r\n\r\n")
                await writer.drain()
        except (asyncio.IncompleteReadError, ConnectionError):
            writer.close()

    async def main() -> None:
        server = await asyncio.start_server(handle, sock=sock, backlog=1024)
        async with server:
            await server.serve_forever()

    loop = _new_loop(loop_kind)
    loop.run_until_complete(main())


# -- clients -----------------------------------------------------------------------------


async def _stream_via(transport: Transport) -> tuple[int, int]:
    response = await transport.request("POST", "/v1/chat/completions", [(b"Content-Type", b"application/json")], b'{"stream":true}')
    received = yields = 0
    try:
        async for chunk in response.aiter_raw():
            received += len(chunk)
            yields += 1
    finally:
        await response.aclose()
    return received, yields


class _Floor(asyncio.Protocol):
    """Reads and counts bytes: no HTTP, no iterator, no pool. The loop's own cost."""

    def __init__(self, done: asyncio.Future[int], expected: int) -> None:
        self.done = done
        self.expected = expected
        self.received = 0
        self.reads = 0

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        transport.write(b'POST / HTTP/1.1\r\nHost: x\r\nContent-Length: 15\r\n\r\n{"stream":true}')  # type: ignore[attr-defined]

    def data_received(self, data: bytes) -> None:
        self.received += len(data)
        self.reads += 1
        if self.received >= self.expected and not self.done.done():
            self.done.set_result(self.reads)


async def _floor_stream(port: int, expected: int) -> tuple[int, int]:
    loop = asyncio.get_running_loop()
    done: asyncio.Future[int] = loop.create_future()
    transport, _ = await loop.create_connection(lambda: _Floor(done, expected), "127.0.0.1", port)
    reads = await done
    transport.close()
    return expected, reads


async def _measure(run_one: Callable[[], Awaitable[tuple[int, int]]], streams: int, chunks: int) -> tuple[float, float, float]:
    """(CPU µs per chunk, wall seconds, iterator steps per chunk) for ``streams`` concurrent streams."""
    cpu0, wall0 = time.process_time(), time.perf_counter()
    results = await asyncio.gather(*(run_one() for _ in range(streams)))
    cpu, wall = time.process_time() - cpu0, time.perf_counter() - wall0
    total_chunks = streams * chunks
    steps = sum(y for _, y in results)
    return cpu / total_chunks * 1e6, wall, steps / total_chunks


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--streams", type=int, default=64, help="concurrent streams per round")
    parser.add_argument("--chunks", type=int, default=200, help="chunks per stream")
    parser.add_argument("--interval", type=float, default=0.005, help="seconds between chunks of one stream")
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument("--loop", choices=["uvloop", "asyncio"], default="uvloop", help="client loop (uvicorn uses uvloop)")
    args = parser.parse_args()

    sock = socket.socket()
    sock.bind(("127.0.0.1", 0))
    sock.listen(1024)
    port = sock.getsockname()[1]
    server = multiprocessing.get_context("fork").Process(target=_serve, args=(sock, args.chunks, args.interval, "uvloop"), daemon=True)
    server.start()
    sock.close()

    url = f"http://127.0.0.1:{port}"
    body_bytes = len(FRAME) * args.chunks  # the floor counts raw bytes, framing included
    expected_raw = body_bytes + len(b"HTTP/1.1 200 OK\r\nContent-Type: text/event-stream\r\nTransfer-Encoding: chunked\r\n\r\n") + 5

    async def bench() -> dict[str, list[tuple[float, float, float]]]:
        native = NativeTransport(url, 5.0, 60.0, 1024)
        fallback = HttpxTransport(url, 5.0, 60.0, 1024)
        clients: dict[str, Callable[[], Awaitable[tuple[int, int]]]] = {
            "floor (bare protocol)": lambda: _floor_stream(port, expected_raw),
            "native": lambda: _stream_via(native),
            "httpx": lambda: _stream_via(fallback),
        }
        results: dict[str, list[tuple[float, float, float]]] = {name: [] for name in clients}
        try:
            for run_one in clients.values():  # warm-up: open the pools, import paths
                await _measure(run_one, args.streams, args.chunks)
            for _ in range(args.rounds):
                for name, run_one in clients.items():
                    results[name].append(await _measure(run_one, args.streams, args.chunks))
        finally:
            await native.aclose()
            await fallback.aclose()
        return results

    loop = _new_loop(args.loop)
    try:
        results = loop.run_until_complete(bench())
    finally:
        loop.close()
        server.terminate()
        server.join()

    print(f"# {args.streams} concurrent streams x {args.chunks} chunks of {len(EVENT)} B, {args.interval * 1000:g} ms apart; "
          f"client loop {args.loop}; {args.rounds} rounds; Python {sys.version.split()[0]}; {os.cpu_count()} CPUs")
    print(f"{'client':<24}{'CPU us/chunk (median)':>24}{'min':>8}{'max':>8}{'reads per chunk':>18}{'wall s':>9}")
    for name, rows in results.items():
        cpu = [r[0] for r in rows]
        print(f"{name:<24}{statistics.median(cpu):>24.1f}{min(cpu):>8.1f}{max(cpu):>8.1f}"
              f"{statistics.median(r[2] for r in rows):>18.2f}{statistics.median(r[1] for r in rows):>9.2f}")


if __name__ == "__main__":
    main()
