"""What the OTLP export does, from the config file's [otlp] table and the OTEL_* environment.

Pure: `OTLP.read` reads the [otlp] table as written (exporter/config.py calls it);
`resolve(config.otlp, os.environ)` → `OtlpSettings`, or ProblemsError naming the config field or
the environment variable. A setting is checked by the same Field whether it comes from the file
or the environment. No OpenTelemetry import here (exporter/otlp/push.py speaks OTLP).

Precedence, per setting (docs/opentelemetry.md): a field written in the config file, else the
signal-specific variable (OTEL_EXPORTER_OTLP_METRICS_*, ..._LOGS_*), else the generic one
(OTEL_EXPORTER_OTLP_*), else the default. That is the OpenTelemetry SDKs' own rule — a value
given in code beats the environment — with the config file in the role of code: what the
operator wrote for this exporter wins over what the environment says for every process.
Headers merge per name, the file's winning. Durations in OTEL_* variables are milliseconds,
as the specification says.
"""
from __future__ import annotations

import os
import re
import socket
from dataclasses import dataclass, field
from urllib.parse import unquote, urlparse

from core.fields import Field, Section, one_of, positive, table_of
from core.problems import Problem, ProblemsError

ENV = "environment"             # Problem.file for a bad environment variable
DEFAULT_PROTOCOL = "http/protobuf"   # the specification's default
DEFAULT_ENDPOINTS = {"grpc": "http://localhost:4317", "http/protobuf": "http://localhost:4318"}
HTTP_PATHS = {"metrics": "v1/metrics", "logs": "v1/logs"}
DEFAULT_INTERVAL = 60.0         # OTEL_METRIC_EXPORT_INTERVAL's default
DEFAULT_TIMEOUT = 10.0          # OTEL_EXPORTER_OTLP_TIMEOUT's default
DEFAULT_EVENTS_PER_SECOND = 100.0
SERVICE_NAME = "bpfleet-exporter"
OTLP_PROTOCOLS = ("grpc", "http/protobuf")
OTLP_TEMPORALITIES = ("cumulative", "delta", "lowmemory")


@dataclass(frozen=True)
class OtlpConfig:
    """The [otlp] table as written: None for every field the file leaves out, so that the
    OTEL_* environment can fill it (`resolve` below: file first)."""
    enabled: bool | None = None
    endpoint: str | None = None
    protocol: str | None = None
    headers: dict | None = None
    interval_seconds: float | None = None
    timeout_seconds: float | None = None
    temporality: str | None = None
    events: bool | None = None
    events_per_second: float | None = None
    resource: dict | None = None


def _seconds(name: str, help: str, zero_ok: bool = False) -> Field:
    return Field(name, (int, float), expect="a positive number" + (" (0 turns events off)" if zero_ok else ""),
                 check=(lambda v: v == 0 or positive(v)) if zero_ok else positive, convert=float, help=help)


OTLP = Section((
    Field("enabled", bool, help="false: no export; default: on when the table is there"),
    Field("endpoint", check=lambda v: (isinstance(v, str) and re.match(r"^https?://[^/\s]+", v) is not None) or (
        f"{v!r} is not a URL with a scheme: http://host:port (plaintext) or https://host:port (TLS)"),
        help="collector base URL; http/protobuf appends /v1/<signal>"),
    Field("protocol", check=one_of(OTLP_PROTOCOLS), help="grpc or http/protobuf (the default)"),
    Field("headers", dict, expect="a table of name = value", read=table_of(Field("", str)),
          help="sent with every export (often credentials)"),
    _seconds("interval_seconds", "seconds between pushes"),
    _seconds("timeout_seconds", "seconds one export may take"),
    Field("temporality", check=one_of(OTLP_TEMPORALITIES), help="cumulative, delta or lowmemory"),
    Field("events", bool, help="export ring-buffer events as OTLP logs"),
    _seconds("events_per_second", "events exported per second, at most", zero_ok=True),
    Field("resource", dict, expect="a table of name = value",
          read=table_of(Field("", (str, int, float, bool), expect="a string, number or boolean")),
          help="resource attributes over the built-in ones"),
), expect="a table: [otlp]", make=OtlpConfig)


@dataclass(frozen=True)
class SignalSettings:
    """Where and how one signal (metrics or logs) goes."""
    protocol: str               # "grpc" | "http/protobuf"
    endpoint: str               # grpc: the URL (scheme says TLS or not); http: the full URL with /v1/<signal>
    headers: dict               # lower-case names
    timeout: float              # seconds, for one export including the exporter's own retries


@dataclass(frozen=True)
class OtlpSettings:
    enabled: bool
    metrics: SignalSettings | None       # None: metrics are not pushed (OTEL_METRICS_EXPORTER=none)
    logs: SignalSettings | None          # None: events are not exported as logs
    interval: float                      # seconds between pushes (before backoff)
    temporality: str                     # "cumulative" | "delta" | "lowmemory"
    events_per_second: float
    resource: dict                       # attributes over the built-in ones (env, then the file)
    sources: dict = field(default_factory=dict)   # setting -> where its value came from

    def summary(self) -> dict:
        """For /status and the log: no header values (they are often credentials)."""
        def sig(s: SignalSettings | None):
            return None if s is None else {"protocol": s.protocol, "endpoint": s.endpoint,
                                           "headers": sorted(s.headers), "timeout_seconds": s.timeout}
        return {"enabled": self.enabled, "metrics": sig(self.metrics), "logs": sig(self.logs),
                "interval_seconds": self.interval, "temporality": self.temporality,
                "events_per_second": self.events_per_second, "sources": dict(self.sources)}


DISABLED = OtlpSettings(False, None, None, DEFAULT_INTERVAL, "cumulative", 0.0, {})


class _Resolver:
    def __init__(self, cfg: OtlpConfig, env, where: str):
        self.cfg, self.env, self.where = cfg, env, where
        self.problems: list[Problem] = []
        self.sources: dict[str, str] = {}

    def bad_env(self, var: str, message: str) -> None:
        p = Problem(ENV, var, message)
        if p not in self.problems:      # generic variables are read once per signal
            self.problems.append(p)

    def pick(self, setting: str, file_value, env_vars: tuple[str, ...], parse, default):
        """The file's value, else the first set variable's parsed value, else the default."""
        if file_value is not None:
            self.sources[setting] = f"{self.where}: otlp.{setting.split('.')[-1]}"
            return file_value
        for var in env_vars:
            raw = self.env.get(var, "").strip()
            if raw:
                try:
                    value = parse(raw)
                except ValueError as e:
                    self.bad_env(var, str(e))
                    return default
                self.sources[setting] = f"env {var}"
                return value
        self.sources[setting] = "default"
        return default

    def signal(self, name: str) -> SignalSettings:
        up = name.upper()
        c = self.cfg
        protocol = self.pick(f"{name}.protocol", c.protocol,
                             (f"OTEL_EXPORTER_OTLP_{up}_PROTOCOL", "OTEL_EXPORTER_OTLP_PROTOCOL"),
                             lambda raw: _checked("protocol", raw), DEFAULT_PROTOCOL)
        # The file's endpoint and OTEL_EXPORTER_OTLP_ENDPOINT are bases (http appends
        # /v1/<signal>); OTEL_EXPORTER_OTLP_<SIGNAL>_ENDPOINT is used as it is.
        if c.endpoint is not None:
            endpoint = self._with_path(protocol, c.endpoint, name)
            self.sources[f"{name}.endpoint"] = f"{self.where}: otlp.endpoint"
        elif self.env.get(f"OTEL_EXPORTER_OTLP_{up}_ENDPOINT", "").strip():
            endpoint = self.env[f"OTEL_EXPORTER_OTLP_{up}_ENDPOINT"].strip()
            self._check_url(f"OTEL_EXPORTER_OTLP_{up}_ENDPOINT", endpoint, protocol)
            self.sources[f"{name}.endpoint"] = f"env OTEL_EXPORTER_OTLP_{up}_ENDPOINT"
        elif self.env.get("OTEL_EXPORTER_OTLP_ENDPOINT", "").strip():
            base = self.env["OTEL_EXPORTER_OTLP_ENDPOINT"].strip()
            self._check_url("OTEL_EXPORTER_OTLP_ENDPOINT", base, protocol)
            endpoint = self._with_path(protocol, base, name)
            self.sources[f"{name}.endpoint"] = "env OTEL_EXPORTER_OTLP_ENDPOINT"
        else:
            endpoint = self._with_path(protocol, DEFAULT_ENDPOINTS[protocol], name)
            self.sources[f"{name}.endpoint"] = "default"
        headers = {}
        for var in ("OTEL_EXPORTER_OTLP_HEADERS", f"OTEL_EXPORTER_OTLP_{up}_HEADERS"):
            if self.env.get(var, "").strip():
                try:
                    headers.update(_headers(self.env[var]))
                except ValueError as e:
                    self.bad_env(var, str(e))
        headers.update({k.lower(): v for k, v in (c.headers or {}).items()})
        timeout = self.pick(f"{name}.timeout_seconds", c.timeout_seconds,
                            (f"OTEL_EXPORTER_OTLP_{up}_TIMEOUT", "OTEL_EXPORTER_OTLP_TIMEOUT"),
                            _millis, DEFAULT_TIMEOUT)
        return SignalSettings(protocol, endpoint, headers, timeout)

    def _check_url(self, var: str, url: str, protocol: str) -> None:
        if protocol != "grpc" and urlparse(url).scheme not in ("http", "https"):
            self.bad_env(var, f"{url!r} is not an http:// or https:// URL")

    @staticmethod
    def _with_path(protocol: str, base: str, signal: str) -> str:
        if protocol == "grpc":
            return base
        return f"{base.rstrip('/')}/{HTTP_PATHS[signal]}"


def resolve(cfg: OtlpConfig | None, env=None, where: str = "config") -> OtlpSettings:
    """Settings for the OTLP export. `cfg` is Config.otlp (None: no [otlp] table), `env` a
    mapping like os.environ, `where` the config file (for `sources`)."""
    env = os.environ if env is None else env
    file_table = cfg is not None
    cfg = cfg or OtlpConfig()
    r = _Resolver(cfg, env, where)
    # Enabled: the file's `enabled`; else a present [otlp] table; else an endpoint in the
    # environment, unless OTEL_SDK_DISABLED=true.
    if cfg.enabled is not None:
        enabled = cfg.enabled
        r.sources["enabled"] = f"{where}: otlp.enabled"
    elif env.get("OTEL_SDK_DISABLED", "").strip().lower() == "true":
        enabled = False
        r.sources["enabled"] = "env OTEL_SDK_DISABLED"
    elif file_table:
        enabled = True
        r.sources["enabled"] = f"{where}: [otlp]"
    else:
        var = next((v for v in ("OTEL_EXPORTER_OTLP_ENDPOINT", "OTEL_EXPORTER_OTLP_METRICS_ENDPOINT",
                                "OTEL_EXPORTER_OTLP_LOGS_ENDPOINT") if env.get(v, "").strip()), None)
        enabled = var is not None
        r.sources["enabled"] = f"env {var}" if var else "default"
    if not enabled:
        return DISABLED
    metrics_on = _exporter_on(r, "OTEL_METRICS_EXPORTER")
    logs_on = _exporter_on(r, "OTEL_LOGS_EXPORTER")
    if cfg.events is not None:
        logs_on = cfg.events
        r.sources["events"] = f"{where}: otlp.events"
    interval = r.pick("interval_seconds", cfg.interval_seconds, ("OTEL_METRIC_EXPORT_INTERVAL",),
                      _millis, DEFAULT_INTERVAL)
    temporality = r.pick("temporality", cfg.temporality, ("OTEL_EXPORTER_OTLP_METRICS_TEMPORALITY_PREFERENCE",),
                         lambda raw: _checked("temporality", raw.lower()), "cumulative")
    eps = cfg.events_per_second if cfg.events_per_second is not None else DEFAULT_EVENTS_PER_SECOND
    r.sources["events_per_second"] = (f"{where}: otlp.events_per_second"
                                      if cfg.events_per_second is not None else "default")
    metrics = r.signal("metrics") if metrics_on else None
    logs = r.signal("logs") if logs_on and eps > 0 else None
    resource = {}
    if env.get("OTEL_RESOURCE_ATTRIBUTES", "").strip():
        try:
            resource.update(_headers(env["OTEL_RESOURCE_ATTRIBUTES"], lower=False))
        except ValueError as e:
            r.bad_env("OTEL_RESOURCE_ATTRIBUTES", str(e))
    if env.get("OTEL_SERVICE_NAME", "").strip():
        resource["service.name"] = env["OTEL_SERVICE_NAME"].strip()
    resource.update(cfg.resource or {})
    if r.problems:
        raise ProblemsError(r.problems)
    return OtlpSettings(True, metrics, logs, interval, temporality, eps, resource, r.sources)


def _exporter_on(r: _Resolver, var: str) -> bool:
    value = r.env.get(var, "").strip().lower()
    if not value:
        return True
    names = {v.strip() for v in value.split(",")}
    if names - {"otlp", "none", "console", "prometheus"}:
        r.bad_env(var, f"{value!r}: bpfleet exports \"otlp\" or \"none\"")
    r.sources[var.lower()] = f"env {var}"
    return "otlp" in names


def _checked(name: str, raw: str) -> str:
    """An environment value checked by the [otlp] field of the same meaning."""
    problem = OTLP.field(name).problem(raw)
    if problem is not None:
        raise ValueError(problem)
    return raw


def _millis(raw: str) -> float:
    try:
        v = float(raw)
    except ValueError:
        raise ValueError(f"{raw!r} is not a number of milliseconds") from None
    if not 0 < v < float("inf"):
        raise ValueError(f"{raw!r}: expected a positive number of milliseconds")
    return v / 1000.0


def _headers(raw: str, lower: bool = True) -> dict:
    """W3C-baggage-like `name=value,name2=value2`, names and values percent-decoded."""
    out = {}
    for item in raw.split(","):
        if not item.strip():
            continue
        name, sep, value = item.partition("=")
        name = unquote(name).strip()
        if not sep or not name:
            raise ValueError(f"{item.strip()!r} is not name=value")
        out[name.lower() if lower else name] = unquote(value).strip()
    return out


def default_resource_attributes(version: str) -> dict:
    """The exporter's own resource attributes (semantic conventions): overridable via
    OTEL_RESOURCE_ATTRIBUTES / OTEL_SERVICE_NAME and the file's [otlp.resource]."""
    u = os.uname()
    return {"service.name": SERVICE_NAME, "service.version": version,
            "host.name": socket.gethostname(), "host.arch": _arch(u.machine),
            "os.type": u.sysname.lower(), "os.version": u.release,
            "os.description": f"{u.sysname} {u.release} {u.version}"}


def _arch(machine: str) -> str:
    return {"x86_64": "amd64", "aarch64": "arm64", "i686": "x86", "i386": "x86",
            "ppc64le": "ppc64", "s390x": "s390x"}.get(machine, machine)
