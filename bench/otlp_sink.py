"""A live OTLP/HTTP trace receiver for the benchmark: accepts every export, keeps nothing.

    python -m bench.otlp_sink --port 4318

It answers like a collector (200, an empty ExportTraceServiceResponse) so the sidecar's
exporter does its full work, serializing and sending, without a collector's own cost on
the machine being measured. GET /healthz answers 200 for the harness.
"""

from __future__ import annotations

import argparse
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any


class Sink(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    spans_bytes = 0

    def do_POST(self) -> None:  # noqa: N802 (http.server's naming)
        Sink.spans_bytes += len(self.rfile.read(int(self.headers.get("content-length", "0"))))
        self._answer(b"", "application/x-protobuf")

    def do_GET(self) -> None:  # noqa: N802
        self._answer(f"{Sink.spans_bytes}\n".encode(), "text/plain")

    def _answer(self, body: bytes, ctype: str) -> None:
        self.send_response(200)
        self.send_header("content-type", ctype)
        self.send_header("content-length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, format: str, *args: Any) -> None:
        pass


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--port", type=int, required=True)
    port = parser.parse_args().port
    ThreadingHTTPServer(("127.0.0.1", port), Sink).serve_forever()


if __name__ == "__main__":
    main()
