"""A small real HTTP server to run as a child process: the upstream the collectors watch.

``python -m tests.collectors.upstream_server PORT [--ok-paths /health,/x] [--children N]
[--child-mb M]``. It answers 200 on the ``--ok-paths`` and 404 elsewhere, and can start
``N`` child processes that each hold ``M`` MiB resident, like vLLM's or llama.cpp's
workers, so tests can check that a process tree is summed.
"""

from __future__ import annotations

import argparse
import signal
import subprocess
import sys
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from types import FrameType

# Touching every page makes the memory resident, not just reserved.
_CHILD = "import sys, time; b = bytearray(int(sys.argv[1]) * 1048576); b[::4096] = b'x' * len(b[::4096]); time.sleep(3600)"


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("port", type=int)
    parser.add_argument("--ok-paths", default="/health")
    parser.add_argument("--children", type=int, default=0)
    parser.add_argument("--child-mb", type=int, default=32)
    args = parser.parse_args()
    ok_paths = set(args.ok_paths.split(","))
    children = [subprocess.Popen([sys.executable, "-c", _CHILD, str(args.child_mb)]) for _ in range(args.children)]

    class Handler(BaseHTTPRequestHandler):
        def do_GET(self) -> None:
            status = 200 if self.path in ok_paths else 404
            body = b'{"status":"ok"}' if status == 200 else b'{"error":"not found"}'
            self.send_response(status)
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

        def log_message(self, format: str, *args: object) -> None:
            pass

    server = ThreadingHTTPServer(("127.0.0.1", args.port), Handler)

    def stop(signum: int, frame: FrameType | None) -> None:
        for child in children:
            child.kill()
            child.wait()
        sys.exit(0)

    signal.signal(signal.SIGTERM, stop)
    server.serve_forever()


if __name__ == "__main__":
    main()
