"""Exporter configuration (TOML), with a built-in default that enables the built-in programs."""
from __future__ import annotations

import re
from dataclasses import dataclass, field
from pathlib import Path

try:
    import tomllib as tomli      # Python 3.11+; pyproject installs the tomli backport below
except ModuleNotFoundError:      # pragma: no cover
    import tomli

from core import manifest as manifest_mod, resources
from core.manifest import SEMVER_RE
from core.problems import Problem, ProblemsError
from exporter.btf_source import BtfConfig

DEFAULT_LISTEN = "127.0.0.1:9436"
DEFAULT_PIN_ROOT = "/sys/fs/bpf/bpfleet"
DEFAULT_ADMIN_SOCKET = "/run/bpfleet/admin.sock"
VERSION_RE = re.compile(r"^(latest|" + SEMVER_RE.pattern.strip("^$") + ")$")


@dataclass(frozen=True)
class ProgramConfig:
    name: str
    version: str = "latest"
    knobs: dict = field(default_factory=dict)
    # Per-host overrides (docs/operations.md): None = the manifest's. budget: False turns the
    # budget off, a BudgetSpec overrides the manifest's fields one by one. max_series: an int
    # for every metric of the program, or {metric name: int}.
    budget: object = None
    max_series: object = None
    variant: str | None = None   # force a [[variants]] entry; refused -> the normal choice
    attach: "AttachTargets | None" = None   # where XDP / cgroup programs attach


@dataclass(frozen=True)
class AttachTargets:
    interfaces: tuple[str, ...] = ()   # XDP programs attach to each
    cgroup: str | None = None          # cgroup v2 directory for cgroup programs


REENABLE_POLICIES = ("manual", "after")


@dataclass(frozen=True)
class BreakerConfig:
    """[breaker]: how budgets are enforced (core/budget.py, exporter/breaker.py)."""
    enabled: bool = True
    interval_seconds: float = 5.0     # one window: how often bpf_stats are read
    windows: int = 3                  # consecutive over-budget windows that make a breach
    min_events: int = 1000            # runs per BPF program in a window to judge ns_per_event
    reenable: str = "manual"          # "manual": admin API PUT or reload; "after": cooldown
    cooldown_seconds: float = 600.0


OTLP_PROTOCOLS = ("grpc", "http/protobuf")
OTLP_TEMPORALITIES = ("cumulative", "delta", "lowmemory")


@dataclass(frozen=True)
class OtlpConfig:
    """The [otlp] table as written: None for every field the file leaves out, so that the
    OTEL_* environment can fill it (exporter/otlp/settings.py resolves the two, file first)."""
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


@dataclass(frozen=True)
class Config:
    source: str                      # file path, or "<built-in default>"
    listen: str = DEFAULT_LISTEN
    registry: str | None = None
    pin_root: str = DEFAULT_PIN_ROOT
    admin_socket: str = DEFAULT_ADMIN_SOCKET
    programs: dict = field(default_factory=dict)   # name -> ProgramConfig
    trusted_keys: tuple = ()                       # ed25519 public keys; set: only signed artifacts load
    otlp: OtlpConfig | None = None                 # None: the file has no [otlp] table
    breaker: BreakerConfig = BreakerConfig()
    btf: BtfConfig = BtfConfig()                   # external BTF for kernels without their own
    mitigations: dict = field(default_factory=dict)  # name -> MitigationConfig (exporter/mitigations/config.py)
    # Keep what attaching XDP / cgroup mitigations needs (CAP_NET_ADMIN), so that one can be
    # applied through the admin API later; implied by a [mitigations] table.
    accept_mitigations: bool = False


def builtin_program_names(mitigations: bool = False) -> list[str]:
    """The built-in observability programs (what the default config runs), or with
    `mitigations` the built-in mitigations: those are enabled only by [mitigations.<name>]."""
    return sorted(d.name for d in resources.programs_dir().iterdir()
                  if (d / "manifest.toml").is_file() and is_mitigation_dir(d) == mitigations)


def is_mitigation_dir(d: Path) -> bool:
    try:
        return "mitigation" in tomli.loads((d / "manifest.toml").read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError, tomli.TOMLDecodeError):
        return False


def default_config() -> Config:
    return Config("<built-in default>",
                  programs={n: ProgramConfig(n) for n in builtin_program_names()})


def parse_listen(value: str, where: str) -> tuple[str, int]:
    host, sep, port = value.rpartition(":")
    if not sep or not port.isdigit() or not 0 < int(port) < 65536:
        raise ProblemsError([Problem(where, "listen", f"{value!r} is not HOST:PORT")])
    return host.strip("[]") or "127.0.0.1", int(port)


def parse(text: str, path: str) -> Config:
    try:
        doc = tomli.loads(text)
    except tomli.TOMLDecodeError as e:
        raise ProblemsError([Problem(path, "", f"not valid TOML: {e}")])
    problems: list[Problem] = []
    known = {"listen", "registry", "pin_root", "admin_socket", "programs", "trusted_keys", "otlp",
             "breaker", "btf", "mitigations", "accept_mitigations"}
    for k in doc:
        if k not in known:
            problems.append(Problem(path, k, f"unknown field (expected one of: {', '.join(sorted(known))})"))
    if not isinstance(doc.get("accept_mitigations", False), bool):
        problems.append(Problem(path, "accept_mitigations", f"expected true or false, got {doc['accept_mitigations']!r}"))
    for k in ("listen", "registry", "pin_root", "admin_socket"):
        if k in doc and not isinstance(doc[k], str):
            problems.append(Problem(path, k, f"expected a string, got {doc[k]!r}"))
    programs = {}
    table = doc.get("programs", {})
    if not isinstance(table, dict):
        problems.append(Problem(path, "programs", "expected a table of [programs.<name>] tables"))
        table = {}
    for name, spec in table.items():
        pc = _program(name, spec, path, problems)
        if pc is not None:
            programs[name] = pc
    keys = doc.get("trusted_keys", [])
    if not isinstance(keys, list) or not all(isinstance(k, str) for k in keys):
        problems.append(Problem(path, "trusted_keys", "expected a list of public key file paths"))
        keys = []
    for i, k in enumerate(keys):
        if not Path(k).is_file():
            problems.append(Problem(path, f"trusted_keys[{i}]", f"{k}: no such file"))
    if "listen" in doc and isinstance(doc["listen"], str):
        try:
            parse_listen(doc["listen"], path)
        except ProblemsError as e:
            problems.extend(e.problems)
    otlp = _otlp(doc["otlp"], path, problems) if "otlp" in doc else None
    breaker = _breaker(doc["breaker"], path, problems) if "breaker" in doc else BreakerConfig()
    btf = _btf(doc["btf"], path, problems) if "btf" in doc else BtfConfig()
    from exporter.mitigations.config import parse_mitigations
    mitigations = parse_mitigations(doc.get("mitigations", {}), path, problems)
    for name in mitigations.keys() & programs.keys():
        problems.append(Problem(path, f"mitigations.{name}", f"{name} is also in [programs]; "
                                "enable it in one place"))
    if problems:
        raise ProblemsError(problems)
    return Config(path, doc.get("listen", DEFAULT_LISTEN), doc.get("registry"),
                  doc.get("pin_root", DEFAULT_PIN_ROOT), doc.get("admin_socket", DEFAULT_ADMIN_SOCKET),
                  programs, tuple(keys), otlp=otlp, breaker=breaker, btf=btf, mitigations=mitigations,
                  accept_mitigations=doc.get("accept_mitigations") is True or "mitigations" in doc)


def _btf(t, path: str, problems: list) -> BtfConfig:
    """[btf]: dir = "/var/lib/bpfleet/btf" (holding <release>.btf), files = { release = path }."""
    if not isinstance(t, dict):
        problems.append(Problem(path, "btf", "expected a table: [btf] with dir and/or files"))
        return BtfConfig()
    before = len(problems)
    for k in t:
        if k not in ("dir", "files"):
            problems.append(Problem(path, f"btf.{k}", "unknown field (expected one of: dir, files)"))
    if "dir" in t and not isinstance(t["dir"], str):
        problems.append(Problem(path, "btf.dir", f"expected a directory path, got {t['dir']!r}"))
    files = t.get("files", {})
    if not isinstance(files, dict):
        problems.append(Problem(path, "btf.files", "expected a table of \"<kernel release>\" = \"<BTF file>\""))
        files = {}
    for release, f in files.items():
        if not isinstance(f, str) or not f:
            problems.append(Problem(path, f"btf.files.{release}", f"expected a BTF file path, got {f!r}"))
    if len(problems) > before:
        return BtfConfig()
    return BtfConfig(t.get("dir"), dict(files))


def _breaker(t, path: str, problems: list) -> BreakerConfig:
    """The [breaker] table. Every problem names breaker.<field>."""
    if not isinstance(t, dict):
        problems.append(Problem(path, "breaker", "expected a table: [breaker]"))
        return BreakerConfig()
    before = len(problems)

    def bad(key: str, message: str) -> None:
        problems.append(Problem(path, f"breaker.{key}", message))

    known = set(BreakerConfig.__dataclass_fields__)
    for k in t:
        if k not in known:
            bad(k, f"unknown field (expected one of: {', '.join(sorted(known))})")
    if "enabled" in t and not isinstance(t["enabled"], bool):
        bad("enabled", f"expected true or false, got {t['enabled']!r}")
    for k in ("interval_seconds", "cooldown_seconds"):
        v = t.get(k)
        if k in t and (isinstance(v, bool) or not isinstance(v, (int, float)) or not 0 < v < float("inf")):
            bad(k, f"expected a positive number of seconds, got {v!r}")
    for k, least in (("windows", 1), ("min_events", 1)):
        v = t.get(k)
        if k in t and (isinstance(v, bool) or not isinstance(v, int) or v < least):
            bad(k, f"expected an integer >= {least}, got {v!r}")
    if "reenable" in t and t["reenable"] not in REENABLE_POLICIES:
        bad("reenable", f"{t['reenable']!r} is not one of: {', '.join(repr(p) for p in REENABLE_POLICIES)}")
    if len(problems) > before:
        return BreakerConfig()
    given = {k: t[k] for k in known if k in t}
    for k in ("interval_seconds", "cooldown_seconds"):
        if k in given:
            given[k] = float(given[k])
    return BreakerConfig(**given)


def _otlp(t, path: str, problems: list) -> OtlpConfig | None:
    """The [otlp] table (docs/opentelemetry.md). Every problem names otlp.<field>."""
    if not isinstance(t, dict):
        problems.append(Problem(path, "otlp", "expected a table: [otlp]"))
        return None
    before = len(problems)

    def bad(key: str, message: str) -> None:
        problems.append(Problem(path, f"otlp.{key}", message))

    known = set(OtlpConfig.__dataclass_fields__)
    for k in t:
        if k not in known:
            bad(k, f"unknown field (expected one of: {', '.join(sorted(known))})")
    for k in ("enabled", "events"):
        if k in t and not isinstance(t[k], bool):
            bad(k, f"expected true or false, got {t[k]!r}")
    for k in ("interval_seconds", "timeout_seconds", "events_per_second"):
        v = t.get(k)
        zero_ok = k == "events_per_second"
        if k in t and (isinstance(v, bool) or not isinstance(v, (int, float)) or not 0 <= v < float("inf")
                       or (v == 0 and not zero_ok)):
            bad(k, f"expected a positive number{' (0 turns events off)' if zero_ok else ''}, got {v!r}")
    endpoint = t.get("endpoint")
    if "endpoint" in t:
        if not isinstance(endpoint, str) or not re.match(r"^https?://[^/\s]+", endpoint):
            bad("endpoint", f"{endpoint!r} is not a URL with a scheme: http://host:port (plaintext) "
                "or https://host:port (TLS)")
    for k, allowed in (("protocol", OTLP_PROTOCOLS), ("temporality", OTLP_TEMPORALITIES)):
        if k in t and t[k] not in allowed:
            bad(k, f"{t[k]!r} is not one of: {', '.join(repr(a) for a in allowed)}")
    for k, types, what in (("headers", (str,), "a string"),
                           ("resource", (str, int, float, bool), "a string, number or boolean")):
        if k not in t:
            continue
        if not isinstance(t[k], dict):
            bad(k, "expected a table of name = value")
            continue
        for name, v in t[k].items():
            if not isinstance(v, types):
                bad(f"{k}.{name}", f"expected {what}, got {v!r}")
    if len(problems) > before:
        return None
    num = {k: float(t[k]) for k in ("interval_seconds", "timeout_seconds", "events_per_second") if k in t}
    return OtlpConfig(t.get("enabled"), endpoint, t.get("protocol"),
                      dict(t["headers"]) if "headers" in t else None,
                      num.get("interval_seconds"), num.get("timeout_seconds"), t.get("temporality"),
                      t.get("events"), num.get("events_per_second"),
                      dict(t["resource"]) if "resource" in t else None)


def _program(name: str, spec, path: str, problems: list) -> ProgramConfig | None:
    where = f"programs.{name}"
    if not re.match(r"^[a-z][a-z0-9_]*$", name):
        problems.append(Problem(path, where, f"{name!r} is not a program name"))
        return None
    if not isinstance(spec, dict):
        problems.append(Problem(path, where, "expected a table: { version = \"1.0.0\", knobs = {...} }"))
        return None
    before = len(problems)
    for k in spec:
        if k not in ("version", "enabled", "knobs", "budget", "max_series", "variant", "attach"):
            problems.append(Problem(path, f"{where}.{k}", "unknown field (expected version, enabled, "
                                    "knobs, budget, max_series, variant, attach)"))
    variant = spec.get("variant")
    if variant is not None and (not isinstance(variant, str) or not re.match(r"^[a-z][a-z0-9_]*$", variant)):
        problems.append(Problem(path, f"{where}.variant", f"expected a variant name like \"fentry\", got {variant!r}"))
    version = spec.get("version", "latest")
    if not isinstance(version, str) or not VERSION_RE.match(version):
        problems.append(Problem(path, f"{where}.version", f"{version!r} is not \"latest\" or MAJOR.MINOR.PATCH"))
    enabled = spec.get("enabled", True)
    if not isinstance(enabled, bool):
        problems.append(Problem(path, f"{where}.enabled", f"expected true or false, got {enabled!r}"))
    knobs = spec.get("knobs", {})
    if not isinstance(knobs, dict):
        problems.append(Problem(path, f"{where}.knobs", "expected a table of knob = value"))
        knobs = {}
    for k, v in knobs.items():
        if not isinstance(v, (int, bool)):
            problems.append(Problem(path, f"{where}.knobs.{k}", f"expected an integer or boolean, got {v!r}"))
    budget = None
    if "budget" in spec:
        b = spec["budget"]
        if b is False:
            budget = False
        elif isinstance(b, dict):
            budget = manifest_mod.parse_budget(manifest_mod._Reader(path, problems), b, f"{where}.budget",
                                               None, complete=False)
        else:
            problems.append(Problem(path, f"{where}.budget", "expected a table like { ns_per_event = 500 }, "
                                    f"or false to turn the program's budget off; got {b!r}"))
    max_series = spec.get("max_series")
    if "max_series" in spec:
        items = max_series.items() if isinstance(max_series, dict) else [(None, max_series)]
        for metric, v in items:
            w = f"{where}.max_series" + (f".{metric}" if metric is not None else "")
            if isinstance(v, bool) or not isinstance(v, int) or v < 1:
                problems.append(Problem(path, w, "expected a positive integer (for every metric of the "
                                        "program) or a table of metric name = positive integer; got "
                                        f"{v!r}"))
    attach = parse_attach(spec["attach"], path, f"{where}.attach", problems) if "attach" in spec else None
    if len(problems) > before or enabled is False:
        return None
    return ProgramConfig(name, version, dict(knobs), budget,
                         dict(max_series) if isinstance(max_series, dict) else max_series, variant, attach)


def parse_attach(t, path: str, where: str, problems: list) -> AttachTargets | None:
    """attach = { interfaces = ["eth0"], cgroup = "/sys/fs/cgroup/app.slice" }"""
    if not isinstance(t, dict):
        problems.append(Problem(path, where, "expected a table like { interfaces = [\"eth0\"] } "
                                "or { cgroup = \"/sys/fs/cgroup/app.slice\" }"))
        return None
    before = len(problems)
    for k in t:
        if k not in ("interfaces", "cgroup"):
            problems.append(Problem(path, f"{where}.{k}", "unknown field (expected interfaces, cgroup)"))
    ifaces = t.get("interfaces", [])
    if not isinstance(ifaces, list) or not all(isinstance(i, str) and 0 < len(i) < 16 and "/" not in i
                                               for i in ifaces):
        problems.append(Problem(path, f"{where}.interfaces", f"expected a list of interface names, got {ifaces!r}"))
    cgroup = t.get("cgroup")
    if cgroup is not None and (not isinstance(cgroup, str) or not cgroup.startswith("/")):
        problems.append(Problem(path, f"{where}.cgroup", f"expected an absolute cgroup v2 directory path, got {cgroup!r}"))
    if len(problems) > before:
        return None
    return AttachTargets(tuple(ifaces), cgroup)


def load(path: str | None) -> Config:
    if path is None:
        return default_config()
    try:
        text = Path(path).read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as e:
        raise ProblemsError([Problem(path, "", f"cannot read: {e}")])
    return parse(text, path)
