"""The processes under test, and what /proc says about them.

Every server runs as a child on 127.0.0.1 and is stopped with the run. CPU time comes
from ``/proc/<pid>/stat`` (utime + stime, all threads), memory from ``VmRSS`` in
``/proc/<pid>/status``.
"""

from __future__ import annotations

import os
import shutil
import socket
import subprocess
import sys
import tempfile
from pathlib import Path

from proxy.children import stop, wait_http_ok

ROOT = Path(__file__).resolve().parent.parent
TICK = os.sysconf("SC_CLK_TCK")


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def _stat(pid: int) -> list[bytes] | None:
    try:
        with open(f"/proc/{pid}/stat", "rb") as f:
            return f.read().rsplit(b")", 1)[1].split()
    except OSError:
        return None


def _descendants(pid: int) -> list[int]:
    children: dict[int, list[int]] = {}
    for entry in os.listdir("/proc"):
        if entry.isdigit():
            fields = _stat(int(entry))
            if fields is not None:
                # Fields after the ")" start at field 3 (state); the parent pid is field 4.
                children.setdefault(int(fields[1]), []).append(int(entry))
    out, todo = [], list(children.get(pid, []))
    while todo:
        child = todo.pop()
        out.append(child)
        todo += children.get(child, [])
    return out


def cpu_seconds(pid: int) -> float:
    """User + system CPU seconds of ``pid`` and its live descendants so far (a relay with
    ``--workers`` is its supervisor and the workers it spawned); 0.0 if it is gone."""
    total = 0.0
    for one in (pid, *_descendants(pid)):
        fields = _stat(one)
        if fields is not None:
            # utime and stime are fields 14 and 15.
            total += (int(fields[11]) + int(fields[12])) / TICK
    return total


def rss_bytes(pid: int) -> int:
    try:
        with open(f"/proc/{pid}/status", "rb") as f:
            for line in f:
                if line.startswith(b"VmRSS:"):
                    return int(line.split()[1]) * 1024
    except OSError:
        pass
    return 0


def machine_busy() -> tuple[float, float]:
    """(busy, total) CPU seconds of the whole machine, from /proc/stat."""
    with open("/proc/stat", "rb") as f:
        values = [int(v) for v in f.readline().split()[1:]]
    idle = values[3] + values[4]
    total = sum(values[:8])
    return (total - idle) / TICK, total / TICK


class Server:
    """A child process listening on ``port``; ``pid`` is the process doing the relaying."""

    def __init__(self, name: str, args: list[str], port: int, ready_path: str, cwd: Path | None = None,
                 env: dict[str, str] | None = None) -> None:
        self.name = name
        self.env = None if env is None else {**os.environ, **env}
        self.port = port
        self.args = args
        self.ready_path = ready_path
        self.cwd = cwd
        self.proc: subprocess.Popen[bytes] | None = None
        self.log = tempfile.TemporaryFile()

    @property
    def pid(self) -> int:
        assert self.proc is not None
        return self.proc.pid

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def start(self) -> Server:
        self.proc = subprocess.Popen(self.args, cwd=self.cwd or ROOT, stdout=self.log, stderr=subprocess.STDOUT,
                                     env=self.env)
        wait_http_ok(self.url + self.ready_path, timeout=30.0, proc=self.proc)
        return self

    def stop(self) -> None:
        stop(self.proc)

    def output(self) -> str:
        self.log.seek(0)
        return self.log.read().decode(errors="replace")[-4000:]


def simulator(port: int) -> Server:
    args = [sys.executable, "-m", "proxy", "simulate", "--port", str(port), "--log-level", "warning",
            "--ttft", "0.02", "--tbt", "0.02", "--output-tokens", "200"]
    return Server("simulator", args, port, "/health")


def infermeter(name: str, upstream: str, port: int, *extra: str, env: dict[str, str] | None = None) -> Server:
    args = [sys.executable, "-m", "proxy", "serve", "--upstream", upstream, "--port", str(port),
            "--log-level", "warning", *extra]
    return Server(name, args, port, "/healthz", env=env)


def floor(port: int) -> Server:
    """uvicorn with infermeter's options and no relay behind it (bench/floor.py)."""
    return Server("floor", [sys.executable, "-m", "bench.floor", "--port", str(port)], port, "/")


def otlp_sink(port: int) -> Server:
    """A live OTLP/HTTP receiver (bench/otlp_sink.py) for the tracing path."""
    return Server("otlp-sink", [sys.executable, "-m", "bench.otlp_sink", "--port", str(port)], port, "/healthz")


def tracing_env(sink: Server) -> dict[str, str]:
    """Tracing on, every request sampled, exported to ``sink``."""
    return {"OTEL_EXPORTER_OTLP_ENDPOINT": sink.url, "OTEL_TRACES_SAMPLER": "always_on"}


NGINX_CONF = """\
daemon off;
master_process off;
worker_processes 1;
worker_rlimit_nofile 20000;
pid {prefix}/nginx.pid;
error_log {prefix}/error.log warn;
events {{ worker_connections 8192; }}
http {{
    access_log off;
    client_body_temp_path {prefix}/body;
    proxy_temp_path {prefix}/proxy;
    fastcgi_temp_path {prefix}/fastcgi;
    uwsgi_temp_path {prefix}/uwsgi;
    scgi_temp_path {prefix}/scgi;
    upstream llm {{
        server 127.0.0.1:{upstream_port};
        keepalive 1024;
    }}
    server {{
        listen 127.0.0.1:{port} backlog=4096;
        location = /nginx-health {{ return 200 "ok"; }}
        location / {{
            proxy_pass http://llm;
            proxy_http_version 1.1;
            proxy_set_header Connection "";
            proxy_buffering off;
            proxy_request_buffering off;
            proxy_read_timeout 600s;
        }}
    }}
}}
"""


class Nginx(Server):
    """nginx in one process (no master), with its own prefix and config in a temp dir."""

    def __init__(self, upstream_port: int, port: int) -> None:
        self.tmp = tempfile.TemporaryDirectory(prefix="infermeter-bench-nginx-")
        prefix = self.tmp.name
        conf = Path(prefix) / "nginx.conf"
        conf.write_text(NGINX_CONF.format(prefix=prefix, upstream_port=upstream_port, port=port))
        super().__init__("nginx", [nginx_binary() or "nginx", "-p", prefix, "-e", f"{prefix}/error.log", "-c", str(conf)],
                         port, "/nginx-health")

    def stop(self) -> None:
        super().stop()
        self.tmp.cleanup()


def nginx_binary() -> str | None:
    for candidate in ("/usr/sbin/nginx", shutil.which("nginx")):
        if candidate and os.access(candidate, os.X_OK):
            return candidate
    return None
