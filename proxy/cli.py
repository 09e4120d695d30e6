"""``infermeter serve|simulate|demo``.

Every flag has an environment variable (``INFERMETER_<FLAG>`` for serve and demo,
``INFERMETER_SIM_<FLAG>`` for simulate); a flag on the command line wins. Bad values
stop the program at start with one line naming the flag.
"""

from __future__ import annotations

import argparse
import asyncio
import dataclasses
import os
import sys
from collections.abc import Callable, Sequence
from typing import Any

from proxy import __version__
from proxy.config import KNOWN_COLLECTORS, UPSTREAM_CLIENTS, ConfigError, Settings


def _bool(text: str) -> bool:
    value = text.strip().lower()
    if value in ("1", "true", "yes", "on"):
        return True
    if value in ("0", "false", "no", "off", ""):
        return False
    raise ValueError(f"expected true or false, got {text!r}")


def _collectors(text: str) -> tuple[str, ...]:
    return tuple(c.strip() for c in text.split(",") if c.strip() and c.strip() != "none")


def _optional_int(text: str) -> int | None:
    return None if text.strip().lower() in ("", "none") else int(text)


def _names(text: str | list[str]) -> tuple[str, ...]:
    """Names from a repeated flag (a list) or a comma-separated value (one flag, or its variable)."""
    parts = text if isinstance(text, list) else [text]
    return tuple(n.strip() for part in parts for n in part.split(",") if n.strip())


def _workers(text: str) -> int:
    """A count, or ``auto``: one per core this process may run on (its CPU affinity, as
    a container's cpuset sets it), not the host's core count."""
    if text.strip().lower() == "auto":
        return len(os.sched_getaffinity(0))
    return int(text)


# flag -> (converter, help); the Settings field is the flag with '-' as '_'.
SERVE_FLAGS: dict[str, tuple[Callable[[str], Any], str]] = {
    "upstream": (str, "URL of the LLM server to relay to (http:// or https://)"),
    "host": (str, "address to listen on"),
    "port": (int, "port to listen on"),
    "metrics-port": (_optional_int, "serve /metrics on this port only, not on --port"),
    "metrics-token": (str, "require 'Authorization: Bearer TOKEN' on /metrics"),
    "admin-prefix": (str, "serve the proxy's own /healthz, /readyz, /metrics under this path (e.g. /infermeter), "
                          "so the upstream's paths of those names stay reachable"),
    "connect-timeout": (float, "seconds to connect to the upstream"),
    "read-timeout": (float, "seconds to wait for upstream headers, and for each later read"),
    "head-timeout": (float, "seconds a client has to send a request's headers (408 after)"),
    "body-timeout": (float, "seconds a client may pause while sending its request body (408 after)"),
    "max-request-bytes": (int, "largest request body accepted (413 above)"),
    "max-request-line": (int, "longest request line accepted, bytes (414 above)"),
    "max-header-bytes": (int, "longest single request header accepted, bytes (431 above)"),
    "max-head-bytes": (int, "largest whole request head accepted, bytes (431 above)"),
    "max-headers": (int, "most request headers accepted (431 above)"),
    "max-models": (int, "distinct model label values before new ones become 'other'"),
    "log-level": (str, "critical, error, warning, info or debug"),
    "upstream-client": (str, f"upstream HTTP client: {', '.join(UPSTREAM_CLIENTS)}"),
    "max-connections": (int, "most upstream connections kept open at once"),
    "observe": (_bool, "parse streams and record metrics (false: a bare relay, for benchmarks)"),
    "inject-usage": (_bool, "ask OpenAI-style upstreams for usage and hide the extra chunk from clients"),
    "expose-upstream-errors": (_bool, "show clients the upstream's address and error in 502/504 bodies "
                                      "(default: a generic message; the detail goes to the log)"),
    "slo-ttft": (float, "SLO on time to first token, seconds"),
    "slo-tpot": (float, "SLO on time per output token, seconds"),
    "slo-request-duration": (float, "SLO on request duration, seconds"),
    "collectors": (_collectors, f"comma-separated collectors to run: {','.join(KNOWN_COLLECTORS)} (or 'none'); "
                                "unset: all, gpu only where an NVIDIA driver is"),
    "sample-interval": (float, "seconds between host/GPU samples"),
    "probe-interval": (float, "seconds between upstream health probes"),
    "probe-path": (str, "upstream path to probe (default: first of /health, /v1/models, /api/tags, / to answer)"),
    "probe-timeout": (float, "seconds before a probe counts as failed"),
    "upstream-pid": (_optional_int, "pid of the upstream server process (default: found by its port when local)"),
    "otlp-endpoint": (str, "export one OpenTelemetry span per request to this OTLP base URL (the OTEL_* variables work too)"),
    "request-log": (str, "write one JSON line per request to this file ('-': standard output)"),
    "request-log-queue": (int, "request-log lines held for the writer before new ones are dropped (and counted)"),
    "checks": (str, "response checks on every answer: all, none, or a comma list of empty, json, tool_arguments, repetition"),
    "eval-url": (str, "judge a sample of answers with this OpenAI-compatible chat completions URL (the judge; never this proxy)"),
    "eval-model": (str, "the judge's model name"),
    "eval-sample": (float, "fraction of answers sent to the judge"),
    "eval-rubric": (_names, "rubric to judge by, repeatable or comma-separated: relevance, groundedness, toxicity, "
                            "or one from --eval-rubrics (default relevance)"),
    "eval-rubrics": (str, "JSON (or YAML) file of more rubrics: name -> prompt template with {answer}, {question}, {context}"),
    "eval-concurrency": (int, "judge calls in flight at once"),
    "eval-queue": (int, "answers held for the judge before new ones are dropped (and counted)"),
    "eval-timeout": (float, "seconds a judge call may take before it counts as failed"),
    "workers": (_workers, "relay processes on one port under a supervisor ('auto': one per core); "
                          "/metrics stays one target with exact sums"),
    "tenant-header": (str, "name the request's tenant by this header, which a trusted gateway sets "
                           "(clients that reach the sidecar directly can set it too)"),
    "tenant-keys": (str, "JSON or YAML file of tenant name -> SHA-256 digests of its API keys; re-read when it changes"),
    "max-tenants": (int, "distinct tenant label values before new ones become 'other'"),
    "prefill-weight": (float, "GPU attribution: one uncached prompt token's work, in output tokens"),
    "gpu-hour-cost": (float, "price of one GPU hour, exported as infermeter_gpu_hour_cost for cost rules"),
    "energy-kwh-cost": (float, "price of one kWh, exported as infermeter_energy_kwh_cost for cost rules"),
}

SIM_FLAGS: dict[str, tuple[Callable[[str], Any], str]] = {
    "host": (str, "address to listen on"),
    "port": (int, "port to listen on"),
    "ttft": (float, "seconds from request arrival to the first token"),
    "tbt": (float, "seconds between tokens"),
    "output-tokens": (int, "tokens per response (a request's max_tokens may lower it)"),
    "jitter": (float, "fraction by which each gap varies at random (seeded)"),
    "seed": (int, "random seed for jitter, errors and text"),
    "model": (str, "model name reported when the request names none"),
    "max-concurrency": (int, "requests generated at once; more wait in a queue (0: no limit)"),
    "error-rate": (float, "fraction of requests answered with HTTP 500"),
    "load-time": (float, "seconds an Ollama-route model takes to load when cold (0: always loaded)"),
    "keep-alive": (float, "seconds a loaded model stays loaded after its last request"),
    "output-text": (str, "answer every request with exactly this text (e.g. a judge's verdict); x-sim-output does it per request"),
    "log-level": (str, "critical, error, warning, info or debug"),
}

DEMO_FLAGS: dict[str, tuple[Callable[[str], Any], str]] = {
    "port": (int, "proxy port (its /metrics is printed)"),
    "sim-port": (int, "simulated upstream port (0: any free port)"),
    "concurrency": (int, "streams kept open by the demo load"),
    "interval": (float, "seconds between summary lines"),
    "duration": (float, "stop after this many seconds (0: run until Ctrl-C)"),
}
LOAD_FLAGS: dict[str, tuple[Callable[[str], Any], str]] = {
    "target": (str, "base URL of the proxy (or server) to load"),
    "concurrency": (int, "streams kept open"),
    "duration": (float, "stop after this many seconds (0: run until Ctrl-C)"),
}
LOAD_DEFAULTS = {"target": "http://127.0.0.1:8100", "concurrency": 4, "duration": 0.0}
DEMO_DEFAULTS = {"port": 8100, "sim_port": 0, "concurrency": 8, "interval": 2.0, "duration": 0.0}
SIM_DEFAULTS = {"host": "127.0.0.1", "port": 8000, "log_level": "info"}


def _metavar(flag: str, convert: Callable[[str], Any]) -> str:
    """A placeholder that says what the value is, for --help."""
    if convert is _bool:
        return "BOOL"
    if flag.endswith(("timeout", "interval", "time", "alive", "duration", "ttft", "tbt", "tpot")) or flag.startswith("slo-"):
        return "SECONDS"
    if flag.endswith(("bytes", "line")):
        return "BYTES"
    if flag.endswith("port"):
        return "PORT"
    if flag in ("upstream", "otlp-endpoint", "target", "eval-url"):
        return "URL"
    if flag in ("request-log", "eval-rubrics", "tenant-keys"):
        return "PATH"
    if flag.endswith("pid"):
        return "PID"
    if convert is int or convert is _optional_int:
        return "N"
    if convert is float:
        return "NUMBER"
    return flag.split("-")[-1].upper()


def _add_flags(parser: argparse.ArgumentParser, flags: dict[str, tuple[Callable[[str], Any], str]], env_prefix: str,
               defaults: dict[str, Any]) -> None:
    for flag, (convert, help_text) in flags.items():
        field = flag.replace("-", "_")
        env = env_prefix + flag.upper().replace("-", "_")
        default = defaults.get(field)
        shown = "" if default in (None, "", ()) else f"; default {_shown(default)}"
        # A switch reads as one: `--inject-usage` alone means true, `--observe false` still works.
        extra: dict[str, Any] = {"nargs": "?", "const": "true"} if convert is _bool else {}
        if convert is _names:
            extra = {"action": "append"}
        parser.add_argument(f"--{flag}", dest=field, default=None, metavar=_metavar(flag, convert),
                            help=f"{help_text} [env {env}{shown}]", **extra)


def _shown(value: Any) -> str:
    if isinstance(value, bool):
        return str(value).lower()
    if isinstance(value, tuple):
        return ",".join(str(v) for v in value)
    return str(value)


def _field_defaults(cls: Any) -> dict[str, Any]:
    return {f.name: f.default for f in dataclasses.fields(cls) if f.init and f.default is not dataclasses.MISSING}


def _collect(args: argparse.Namespace, flags: dict[str, tuple[Callable[[str], Any], str]], env_prefix: str) -> dict[str, Any]:
    values: dict[str, Any] = {}
    for flag, (convert, _) in flags.items():
        field = flag.replace("-", "_")
        raw = getattr(args, field)
        source = f"--{flag}"
        if raw is None:
            env = env_prefix + flag.upper().replace("-", "_")
            raw = os.environ.get(env)
            source = f"--{flag} (from {env})"
        if raw is None:
            continue
        try:
            values[field] = convert(raw)
        except ValueError:
            raise ConfigError(f"{source}: invalid value {raw!r}") from None
    return values


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="infermeter", description="Observability sidecar for LLM inference servers.")
    parser.add_argument("--version", action="version", version=f"infermeter {__version__}")
    sub = parser.add_subparsers(dest="command", required=True)
    serve = sub.add_parser("serve", help="relay to an LLM server and export its metrics")
    _add_flags(serve, SERVE_FLAGS, "INFERMETER_", _field_defaults(Settings))
    simulate = sub.add_parser("simulate", help="run the simulated LLM server")
    from proxy.simulator.config import SimConfig
    _add_flags(simulate, SIM_FLAGS, "INFERMETER_SIM_", {**_field_defaults(SimConfig), **SIM_DEFAULTS})
    demo = sub.add_parser("demo", help="simulator + proxy + gentle load, with a live summary")
    _add_flags(demo, DEMO_FLAGS, "INFERMETER_DEMO_", DEMO_DEFAULTS)
    load = sub.add_parser("load", help="drive the demo's gentle mixed load through a running proxy")
    _add_flags(load, LOAD_FLAGS, "INFERMETER_LOAD_", LOAD_DEFAULTS)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    try:
        if args.command == "serve":
            settings = Settings(**_collect(args, SERVE_FLAGS, "INFERMETER_"))
            if settings.workers > 1:
                from proxy.workers.supervisor import supervise
                return supervise(settings)
            from proxy.server import serve
            return serve(settings)
        if args.command == "simulate":
            values = {**SIM_DEFAULTS, **_collect(args, SIM_FLAGS, "INFERMETER_SIM_")}
            from proxy.server import simulate
            return simulate(values)
        if args.command == "load":
            values = {**LOAD_DEFAULTS, **_collect(args, LOAD_FLAGS, "INFERMETER_LOAD_")}
            if values["concurrency"] < 1 or values["duration"] < 0:
                raise ConfigError("--concurrency must be at least 1 and --duration not negative")
            from proxy.demo.load import run_load
            return asyncio.run(run_load(**values))
        values = {**DEMO_DEFAULTS, **_collect(args, DEMO_FLAGS, "INFERMETER_DEMO_")}
        from proxy.demo.run import run_demo
        return asyncio.run(run_demo(**values)) or 0
    except (ConfigError, ValueError) as exc:
        print(f"infermeter {args.command}: error: {exc}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        return 130
