"""``python -m proxy.healthcheck``: the image's HEALTHCHECK, right for every command.

It finds the infermeter process (PID 1 in a container; with an init such as
``docker run --init`` in front, the lowest infermeter PID), reads how that process was
started, and asks the question that fits:

    serve     GET http://HOST:PORT[ADMIN_PREFIX]/healthz
    demo      GET http://127.0.0.1:PORT/healthz
    simulate  GET http://HOST:PORT/health
    load      the process is alive (it listens on nothing)

PORT and the rest resolve as the CLI resolves them: the process's own flags (its argv,
parsed by the CLI's parser), then its environment, then the CLI's defaults. So
``serve --port 18100``, ``INFERMETER_PORT=18100`` and ``simulate`` are each probed where
they listen. Everything is read from /proc, nothing from a file the server writes, so a
read-only root filesystem works. Exit 0 healthy, 1 unhealthy (Docker's convention), with
one line saying what was asked; Docker and podman keep it in the health log.
"""

from __future__ import annotations

import argparse
import contextlib
import http.client
import io
import os
import sys
from pathlib import Path
from typing import Any

from proxy.cli import DEMO_DEFAULTS, SIM_DEFAULTS, build_parser
from proxy.config import Settings

# command -> (environment prefix, defaults, health path); only these fields are read.
ROUTES: dict[str, tuple[str, dict[str, Any], str]] = {
    "serve": ("INFERMETER_", {"host": Settings.host, "port": Settings.port, "admin_prefix": ""}, "/healthz"),
    # The demo's proxy listens on Settings' host; it has no --host.
    "demo": ("INFERMETER_DEMO_", {"host": Settings.host, "port": DEMO_DEFAULTS["port"]}, "/healthz"),
    "simulate": ("INFERMETER_SIM_", {"host": SIM_DEFAULTS["host"], "port": SIM_DEFAULTS["port"]}, "/health"),
}
# A wildcard listener answers on loopback; asking loopback needs no route out of the container.
LOOPBACK = {"0.0.0.0": "127.0.0.1", "": "127.0.0.1", "::": "::1"}


def command_args(argv: list[str]) -> list[str] | None:
    """The arguments after the program, if ``argv`` runs infermeter; else None."""
    if argv and os.path.basename(argv[0]) == "infermeter":
        return argv[1:]
    if len(argv) > 1 and os.path.basename(argv[1]) == "infermeter":  # python /opt/venv/bin/infermeter
        return argv[2:]
    if argv[1:3] == ["-m", "proxy"]:
        return argv[3:]
    return None


def _read_argv(proc: Path, pid: int) -> list[str] | None:
    try:
        raw = (proc / str(pid) / "cmdline").read_bytes()
        state = (proc / str(pid) / "stat").read_text().rsplit(")", 1)[1].split()[0]
    except (OSError, IndexError):
        return None
    parts = raw.split(b"\0")
    if parts[-1] == b"":  # the kernel ends each argument with NUL; a rewritten title may not
        parts.pop()
    return None if state == "Z" else [part.decode(errors="replace") for part in parts]


def _read_environ(proc: Path, pid: int) -> dict[str, str]:
    """The process's environment; ours when it cannot be read (another uid without CAP_SYS_PTRACE),
    which in a container is the same configured environment."""
    try:
        raw = (proc / str(pid) / "environ").read_bytes()
    except OSError:
        return dict(os.environ)
    pairs = (entry.decode(errors="replace").partition("=") for entry in raw.split(b"\0") if entry)
    return {key: value for key, _, value in pairs}


def _parse(args: list[str]) -> argparse.Namespace | None:
    # The process is running, so its argv parsed once; a failure means it is not ours after all.
    with contextlib.redirect_stderr(io.StringIO()), contextlib.redirect_stdout(io.StringIO()):
        try:
            return build_parser().parse_args(args)
        except SystemExit:
            return None


def find(proc: Path, pid: int | None) -> tuple[int, argparse.Namespace] | None:
    """The infermeter process to check: ``pid``, else PID 1, else the lowest infermeter PID."""
    if pid is not None:
        candidates = [pid]
    else:
        numeric = sorted(int(p.name) for p in proc.iterdir() if p.name.isdigit())
        candidates = [1, *(p for p in numeric if p not in (1, os.getpid()))]
    for candidate in candidates:
        argv = _read_argv(proc, candidate)
        args = command_args(argv) if argv else None
        parsed = _parse(args) if args else None
        if parsed is not None and parsed.command in (*ROUTES, "load"):
            return candidate, parsed
    return None


def health_url(parsed: argparse.Namespace, environ: dict[str, str]) -> str:
    """Where this command answers its health question; ValueError for a port it cannot tell."""
    prefix, defaults, path = ROUTES[parsed.command]
    values: dict[str, Any] = {}
    for field, default in defaults.items():
        value = getattr(parsed, field, None)
        values[field] = environ.get(prefix + field.upper(), default) if value is None else value
    port = int(values["port"])
    if port == 0:
        raise ValueError("it listens on a port the system chose (port 0)")
    host = LOOPBACK.get(values["host"], values["host"])
    host = f"[{host}]" if ":" in host else host
    return f"http://{host}:{port}{values.get('admin_prefix', '')}{path}"


def _get(url: str, timeout: float) -> int:
    # http.client, not urllib: urllib would send a loopback request through HTTP_PROXY.
    target = url.split("://", 1)[1]
    hostport, _, path = target.partition("/")
    host, _, port = hostport.rpartition(":")
    connection = http.client.HTTPConnection(host.strip("[]"), int(port), timeout=timeout)
    try:
        connection.request("GET", "/" + path)
        return connection.getresponse().status
    finally:
        connection.close()


def check(proc: Path = Path("/proc"), pid: int | None = None, timeout: float = 2.0) -> tuple[bool, str]:
    """(healthy, one line saying what was asked and what answered)."""
    found = find(proc, pid)
    if found is None:
        return False, "unhealthy: no infermeter process found" + ("" if pid is None else f" at pid {pid}")
    pid, parsed = found
    if parsed.command == "load":
        return True, f"healthy: infermeter load (pid {pid}) is running"
    try:
        url = health_url(parsed, _read_environ(proc, pid))
        status = _get(url, timeout)
    except (OSError, ValueError, http.client.HTTPException) as exc:
        return False, f"unhealthy: infermeter {parsed.command} (pid {pid}): {exc}"
    return status == 200, f"{'healthy' if status == 200 else 'unhealthy'}: GET {url} answered {status}"


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m proxy.healthcheck",
                                     description="Health of the running infermeter command (the image's HEALTHCHECK).")
    parser.add_argument("--pid", type=int, default=None, help="check this process (default: PID 1, else the lowest infermeter PID)")
    parser.add_argument("--timeout", type=float, default=2.0, metavar="SECONDS", help="seconds to wait for the answer")
    args = parser.parse_args(argv)
    healthy, line = check(pid=args.pid, timeout=args.timeout)
    print(line)
    return 0 if healthy else 1


if __name__ == "__main__":
    sys.exit(main())
