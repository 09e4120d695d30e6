"""Every setting of the sidecar, its default and its validation, in one frozen object.

The CLI maps flags and ``INFERMETER_*`` environment variables onto these fields; tests
and embedders build a ``Settings`` directly. A bad value raises ``ConfigError`` whose
message names the flag, so the CLI can print one line and exit.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from urllib.parse import urlsplit

KNOWN_COLLECTORS = ("system", "gpu", "upstream")
UPSTREAM_CLIENTS = ("native", "httpx")


class ConfigError(ValueError):
    """A setting has a value the sidecar cannot run with."""


@dataclass(frozen=True)
class Settings:
    upstream: str = "http://127.0.0.1:8000"
    host: str = "127.0.0.1"
    port: int = 8100
    metrics_port: int | None = None
    metrics_token: str | None = field(default=None, repr=False)
    connect_timeout: float = 5.0
    read_timeout: float = 600.0
    # nginx's client_body_timeout: the longest a client may pause while sending its body.
    body_timeout: float = 60.0
    max_request_bytes: int = 16 * 1024 * 1024
    max_models: int = 32
    log_level: str = "info"
    upstream_client: str = "native"
    max_connections: int = 1024
    # The tap and metrics can be switched off so a benchmark sees the bare relay's cost.
    observe: bool = True
    inject_usage: bool = False
    slo_ttft: float | None = None
    slo_tpot: float | None = None
    slo_request_duration: float | None = None
    collectors: tuple[str, ...] = KNOWN_COLLECTORS
    sample_interval: float = 1.0
    probe_interval: float = 5.0
    probe_path: str | None = None
    probe_timeout: float = 2.0
    upstream_pid: int | None = None

    def __post_init__(self) -> None:
        parts = urlsplit(self.upstream)
        if parts.scheme not in ("http", "https") or not parts.hostname:
            raise ConfigError(f"--upstream must be an http:// or https:// URL with a host, got {self.upstream!r}")
        if parts.query or parts.fragment:
            raise ConfigError("--upstream must not carry a query or fragment")
        # The URL appears in logs and error bodies: credentials in it would leak there.
        if parts.username is not None or parts.password is not None:
            raise ConfigError("--upstream must not carry credentials (user:password@); clients send their own")
        for name in ("port", "metrics_port"):
            value = getattr(self, name)
            if value is not None and not 0 <= value <= 65535:
                raise ConfigError(f"--{_flag(name)} must be between 0 and 65535, got {value}")
        if self.metrics_port is not None and self.metrics_port == self.port and self.port != 0:
            raise ConfigError("--metrics-port must differ from --port")
        for name in ("connect_timeout", "read_timeout", "body_timeout", "sample_interval", "probe_interval", "probe_timeout"):
            if not getattr(self, name) > 0:
                raise ConfigError(f"--{_flag(name)} must be a positive number of seconds")
        for name in ("slo_ttft", "slo_tpot", "slo_request_duration"):
            value = getattr(self, name)
            if value is not None and not value > 0:
                raise ConfigError(f"--{_flag(name)} must be a positive number of seconds")
        for name in ("max_request_bytes", "max_models", "max_connections"):
            if getattr(self, name) < 1:
                raise ConfigError(f"--{_flag(name)} must be at least 1")
        if self.log_level.lower() not in ("critical", "error", "warning", "info", "debug"):
            raise ConfigError(f"--log-level must be one of critical, error, warning, info, debug; got {self.log_level!r}")
        if self.upstream_client not in UPSTREAM_CLIENTS:
            raise ConfigError(f"--upstream-client must be one of {', '.join(UPSTREAM_CLIENTS)}; got {self.upstream_client!r}")
        unknown = [c for c in self.collectors if c not in KNOWN_COLLECTORS]
        if unknown:
            raise ConfigError(f"--collectors: unknown collector(s) {', '.join(unknown)}; known: {', '.join(KNOWN_COLLECTORS)}")
        if self.probe_path is not None and not self.probe_path.startswith("/"):
            raise ConfigError("--probe-path must start with '/'")
        if self.upstream_pid is not None and self.upstream_pid < 1:
            raise ConfigError("--upstream-pid must be a positive process id")

    @property
    def slo_thresholds(self) -> dict[str, float]:
        pairs = {"ttft": self.slo_ttft, "tpot": self.slo_tpot, "request_duration": self.slo_request_duration}
        return {k: v for k, v in pairs.items() if v is not None}


def _flag(name: str) -> str:
    return name.replace("_", "-")
