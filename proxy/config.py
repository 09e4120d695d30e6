"""Every setting of the sidecar, its default and its validation, in one frozen object.

The CLI maps flags and ``INFERMETER_*`` environment variables onto these fields; tests
and embedders build a ``Settings`` directly. A bad value raises ``ConfigError`` whose
message names the flag, so the CLI can print one line and exit.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from urllib.parse import urlsplit

from proxy.quality import rubrics
from proxy.quality.checks import parse_checks
from proxy.tenants.identity import SECRET_HEADERS
from proxy.tenants.keys import KeysFileError, load_keys

KNOWN_COLLECTORS = ("system", "gpu", "upstream", "ollama")
UPSTREAM_CLIENTS = ("native", "httpx")
MAX_WORKERS = 256


class ConfigError(ValueError):
    """A setting has a value the sidecar cannot run with."""


_DEFAULT_PORTS = {"http": 80, "https": 443}
# An HTTP field name (RFC 9110 section 5.1: a token).
_TOKEN = re.compile(r"[!#$%&'*+.^_`|~0-9A-Za-z-]+")


@dataclass(frozen=True)
class UpstreamURL:
    """The one upstream, parsed once: transports, the process finder and the probe read this."""

    url: str
    scheme: str
    host: str
    port: int
    # The base path every request is sent under, without a trailing slash.
    prefix: str

    @classmethod
    def parse(cls, url: str) -> UpstreamURL:
        parts = urlsplit(url)
        if parts.scheme not in _DEFAULT_PORTS or not parts.hostname:
            raise ConfigError(f"--upstream must be an http:// or https:// URL with a host, got {url!r}")
        if parts.query or parts.fragment:
            raise ConfigError("--upstream must not carry a query or fragment")
        # The URL appears in logs and error bodies: credentials in it would leak there.
        if parts.username is not None or parts.password is not None:
            raise ConfigError("--upstream must not carry credentials (user:password@); clients send their own")
        try:
            port = parts.port
        except ValueError:
            raise ConfigError(f"--upstream has an invalid port: {url!r}") from None
        return cls(url, parts.scheme, parts.hostname, port or _DEFAULT_PORTS[parts.scheme], parts.path.rstrip("/"))

    @classmethod
    def of(cls, upstream: UpstreamURL | str) -> UpstreamURL:
        return upstream if isinstance(upstream, UpstreamURL) else cls.parse(upstream)

    @property
    def authority(self) -> str:
        """``host[:port]`` as the Host header carries it: IDNA, brackets for IPv6, no default port."""
        host = self.host if self.host.isascii() else self.host.encode("idna").decode("ascii")
        authority = f"[{host}]" if ":" in host else host
        return authority if self.port == _DEFAULT_PORTS[self.scheme] else f"{authority}:{self.port}"


@dataclass(frozen=True)
class HeadLimits:
    """Bounds on one request head; defaults follow nginx (8 KiB buffers, 4 of them) and Envoy (100 headers)."""

    max_request_line: int = 8 * 1024
    max_header_bytes: int = 8 * 1024
    max_head_bytes: int = 32 * 1024
    max_headers: int = 100
    # nginx's client_header_timeout is 60 s; a request head is a few hundred bytes.
    timeout: float = 30.0
    # nginx's client_body_timeout: the longest pause in a body, also one nobody reads.
    body_timeout: float = 60.0


@dataclass(frozen=True)
class Settings:
    upstream: str = "http://127.0.0.1:8000"
    upstream_url: UpstreamURL = field(init=False, repr=False, compare=False)
    host: str = "127.0.0.1"
    port: int = 8100
    metrics_port: int | None = None
    metrics_token: str | None = field(default=None, repr=False)
    # Where the proxy's own /healthz, /readyz and /metrics live on --port ("" = at the root).
    admin_prefix: str = ""
    connect_timeout: float = 5.0
    read_timeout: float = 600.0
    # nginx's client_body_timeout: the longest a client may pause while sending its body.
    body_timeout: float = 60.0
    max_request_bytes: int = 16 * 1024 * 1024
    # Request head bounds (proxy.edge): nginx's 8 KiB line and header buffers, 4 of them
    # for a whole head; Envoy's 100 headers.
    max_request_line: int = HeadLimits.max_request_line
    max_header_bytes: int = HeadLimits.max_header_bytes
    max_head_bytes: int = HeadLimits.max_head_bytes
    max_headers: int = HeadLimits.max_headers
    head_timeout: float = HeadLimits.timeout
    max_models: int = 32
    log_level: str = "info"
    upstream_client: str = "native"
    max_connections: int = 1024
    # The tap and metrics can be switched off so a benchmark sees the bare relay's cost.
    observe: bool = True
    inject_usage: bool = False
    # 502/504 bodies name the upstream and its error only when asked (nginx and Envoy never do).
    expose_upstream_errors: bool = False
    slo_ttft: float | None = None
    slo_tpot: float | None = None
    slo_request_duration: float | None = None
    # None: every collector, the GPU's only where a driver is (proxy.collectors.catalog);
    # named ones, gpu included, must work.
    collectors: tuple[str, ...] | None = None
    sample_interval: float = 1.0
    probe_interval: float = 5.0
    probe_path: str | None = None
    probe_timeout: float = 2.0
    upstream_pid: int | None = None
    # Drill-down (DESIGN.md section 12). Tracing also turns on through the standard OTEL_*
    # variables; this flag is the OTLP base URL, like OTEL_EXPORTER_OTLP_ENDPOINT.
    otlp_endpoint: str | None = None
    # A JSON line per request: a file path, or "-" for standard output.
    request_log: str | None = None
    request_log_queue: int = 10_000
    # Relay processes on one port under a supervisor (proxy.workers); 1 is the plain
    # single-process path, unchanged.
    workers: int = 1
    # Response checks and evaluations (DESIGN.md section 15): checks on every answer ('all',
    # 'none' or a comma list), and a judge model for a sample of them when --eval-url is set.
    checks: str = "all"
    eval_url: str | None = None
    eval_model: str | None = None
    eval_sample: float = 0.01
    eval_rubric: tuple[str, ...] = ()
    eval_rubrics: str | None = None
    eval_concurrency: int = 2
    eval_queue: int = 100
    eval_timeout: float = 30.0
    # Tenants (DESIGN.md section 14): a header a trusted gateway sets, and/or a file mapping
    # API key digests to tenant names; tenant series exist only when one is set.
    tenant_header: str | None = None
    tenant_keys: str | None = None
    max_tenants: int = 100
    # GPU attribution (DESIGN.md section 14): how many output tokens' work one uncached
    # prompt token counts as, and the prices the cost gauges export.
    prefill_weight: float = 0.1
    gpu_hour_cost: float | None = None
    energy_kwh_cost: float | None = None

    def __post_init__(self) -> None:
        # Frozen: the parsed value is stored once, beside the text it came from.
        object.__setattr__(self, "upstream_url", UpstreamURL.parse(self.upstream))
        for name in ("port", "metrics_port"):
            value = getattr(self, name)
            if value is not None and not 0 <= value <= 65535:
                raise ConfigError(f"--{_flag(name)} must be between 0 and 65535, got {value}")
        if self.metrics_port is not None and self.metrics_port == self.port and self.port != 0:
            raise ConfigError("--metrics-port must differ from --port")
        for name in ("connect_timeout", "read_timeout", "body_timeout", "head_timeout", "sample_interval", "probe_interval", "probe_timeout"):
            if not getattr(self, name) > 0:
                raise ConfigError(f"--{_flag(name)} must be a positive number of seconds")
        for name in ("slo_ttft", "slo_tpot", "slo_request_duration"):
            value = getattr(self, name)
            if value is not None and not value > 0:
                raise ConfigError(f"--{_flag(name)} must be a positive number of seconds")
        for name in ("max_request_bytes", "max_models", "max_connections", "max_request_line", "max_header_bytes",
                     "max_head_bytes", "max_headers"):
            if getattr(self, name) < 1:
                raise ConfigError(f"--{_flag(name)} must be at least 1")
        if self.log_level.lower() not in ("critical", "error", "warning", "info", "debug"):
            raise ConfigError(f"--log-level must be one of critical, error, warning, info, debug; got {self.log_level!r}")
        if self.upstream_client not in UPSTREAM_CLIENTS:
            raise ConfigError(f"--upstream-client must be one of {', '.join(UPSTREAM_CLIENTS)}; got {self.upstream_client!r}")
        unknown = [c for c in self.collectors or () if c not in KNOWN_COLLECTORS]
        if unknown:
            raise ConfigError(f"--collectors: unknown collector(s) {', '.join(unknown)}; known: {', '.join(KNOWN_COLLECTORS)}")
        if self.admin_prefix and (not self.admin_prefix.startswith("/") or self.admin_prefix.endswith("/")
                                  or "?" in self.admin_prefix):
            raise ConfigError("--admin-prefix must start with '/' and not end with one, e.g. /infermeter")
        if self.probe_path is not None and not self.probe_path.startswith("/"):
            raise ConfigError("--probe-path must start with '/'")
        if self.upstream_pid is not None and self.upstream_pid < 1:
            raise ConfigError("--upstream-pid must be a positive process id")
        if self.otlp_endpoint is not None:
            otlp = urlsplit(self.otlp_endpoint)
            if otlp.scheme not in ("http", "https") or not otlp.hostname:
                raise ConfigError(f"--otlp-endpoint must be an http:// or https:// URL, got {self.otlp_endpoint!r}")
        if self.request_log is not None and not self.request_log.strip():
            raise ConfigError("--request-log must be a file path or '-' for standard output")
        if self.request_log_queue < 1:
            raise ConfigError("--request-log-queue must be at least 1")
        if not 1 <= self.workers <= MAX_WORKERS:
            raise ConfigError(f"--workers must be between 1 and {MAX_WORKERS} (or 'auto'), got {self.workers}")
        self._check_quality()
        self._check_tenants()
        if not self.prefill_weight >= 0:
            raise ConfigError("--prefill-weight must be 0 or more")
        for name in ("gpu_hour_cost", "energy_kwh_cost"):
            value = getattr(self, name)
            if value is not None and not value >= 0:
                raise ConfigError(f"--{_flag(name)} must be 0 or more")

    def _check_tenants(self) -> None:
        if self.max_tenants < 1:
            raise ConfigError("--max-tenants must be at least 1")
        header = self.tenant_header
        if header is not None:
            if not _TOKEN.fullmatch(header):
                raise ConfigError(f"--tenant-header must be a header name, got {header!r}")
            if header.lower() in SECRET_HEADERS:
                # Its value would become a label: the tenant must be named, not the key.
                raise ConfigError(f"--tenant-header {header} carries secrets; use --tenant-keys to map API keys to tenants")
        if self.tenant_keys is not None:
            try:
                load_keys(self.tenant_keys)
            except KeysFileError as exc:
                raise ConfigError(f"--tenant-keys: {exc}") from None

    @property
    def tenants_on(self) -> bool:
        """Whether a tenant source is set (and so the tenant series exist)."""
        return bool(self.tenant_header or self.tenant_keys)

    def _check_quality(self) -> None:
        try:
            parse_checks(self.checks)
        except ValueError as exc:
            raise ConfigError(f"--checks: {exc}") from None
        if self.eval_url is None:
            if self.eval_model or self.eval_rubric or self.eval_rubrics:
                raise ConfigError("--eval-model, --eval-rubric and --eval-rubrics need --eval-url (the judge)")
            return
        judge = urlsplit(self.eval_url)
        if judge.scheme not in ("http", "https") or not judge.hostname:
            raise ConfigError(f"--eval-url must be an http:// or https:// URL, got {self.eval_url!r}")
        if judge.hostname in (self.host, "localhost", "127.0.0.1") and judge.port == self.port and self.port != 0:
            # Its traffic would be measured as user traffic, and would be sampled for judging.
            raise ConfigError("--eval-url points at this proxy; point it at the judge server itself")
        if not self.eval_model:
            raise ConfigError("--eval-url needs --eval-model, the judge model's name")
        if not 0 <= self.eval_sample <= 1:
            raise ConfigError(f"--eval-sample must be a fraction between 0 and 1, got {self.eval_sample}")
        if self.eval_concurrency < 1 or self.eval_queue < 1:
            raise ConfigError("--eval-concurrency and --eval-queue must be at least 1")
        if not self.eval_timeout > 0:
            raise ConfigError("--eval-timeout must be a positive number of seconds")
        self.judge_rubrics  # noqa: B018 (loads the file and checks the names now, not at the first request)

    @property
    def enabled_checks(self) -> frozenset[str]:
        return parse_checks(self.checks)

    @property
    def judge_rubrics(self) -> dict[str, str]:
        """The rubrics to run, name -> prompt template: --eval-rubric (default relevance) from the
        built-in ones and --eval-rubrics FILE."""
        known = dict(rubrics.BUILT_IN)
        if self.eval_rubrics is not None:
            try:
                known.update(rubrics.load(self.eval_rubrics))
            except (OSError, ValueError) as exc:
                raise ConfigError(f"--eval-rubrics: {exc}") from None
        names = self.eval_rubric or ("relevance",)
        unknown = [n for n in names if n not in known]
        if unknown:
            raise ConfigError(f"--eval-rubric: unknown rubric(s) {', '.join(unknown)}; known: {', '.join(known)}")
        return {n: known[n] for n in names}

    @property
    def head_limits(self) -> HeadLimits:
        return HeadLimits(self.max_request_line, self.max_header_bytes, self.max_head_bytes, self.max_headers,
                          self.head_timeout, self.body_timeout)

    @property
    def slo_thresholds(self) -> dict[str, float]:
        pairs = {"ttft": self.slo_ttft, "tpot": self.slo_tpot, "request_duration": self.slo_request_duration}
        return {k: v for k, v in pairs.items() if v is not None}


def _flag(name: str) -> str:
    return name.replace("_", "-")
