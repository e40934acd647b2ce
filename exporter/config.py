"""Exporter configuration (TOML), with a built-in default that enables the built-in programs.

Every section is declared once with core/fields.py; its own module reads it:
[programs.<name>] exporter/config_programs.py, [mitigations.<name>] exporter/mitigations/config.py,
[otlp] exporter/otlp/settings.py, [breaker] and [btf] here.
"""
from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

try:
    import tomllib as tomli      # Python 3.11+; pyproject installs the tomli backport below
except ModuleNotFoundError:      # pragma: no cover
    import tomli

from core import resources
from core.fields import Field, Reader, Section, list_of, one_of, positive, table_of
from core.problems import Problem, ProblemsError
from exporter.btf_source import BtfConfig
# Re-exported: the program and OTLP config types are part of this module's API.
from exporter.config_programs import AttachTargets, ProgramConfig, read_programs  # noqa: F401
from exporter.mitigations.config import read_mitigations
from exporter.otlp.settings import OTLP, OtlpConfig

DEFAULT_LISTEN = "127.0.0.1:9436"
DEFAULT_PIN_ROOT = "/sys/fs/bpf/bpfleet"
DEFAULT_ADMIN_SOCKET = "/run/bpfleet/admin.sock"
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


def _listen_problem(value: str) -> str | None:
    host, sep, port = value.rpartition(":")
    if not sep or not port.isdigit() or not 0 < int(port) < 65536:
        return f"{value!r} is not HOST:PORT"
    return None


def parse_listen(value: str, where: str) -> tuple[str, int]:
    if (problem := _listen_problem(value)) is not None:
        raise ProblemsError([Problem(where, "listen", problem)])
    host, _, port = value.rpartition(":")
    return host.strip("[]") or "127.0.0.1", int(port)


def _seconds(name: str, help: str) -> Field:
    return Field(name, (int, float), expect="a positive number of seconds", check=positive,
                 convert=float, help=help)


def _at_least_one(name: str, help: str) -> Field:
    return Field(name, int, expect="an integer >= 1", check=lambda v: v >= 1, help=help)


BREAKER = Section((
    Field("enabled", bool, help="false: budgets are reported, not enforced"),
    _seconds("interval_seconds", "one window: how often bpf_stats are read"),
    _at_least_one("windows", "consecutive over-budget windows that make a breach"),
    _at_least_one("min_events", "runs per BPF program in a window to judge ns_per_event"),
    Field("reenable", check=one_of(REENABLE_POLICIES), help='"manual" (admin API or reload) or "after" a cooldown'),
    _seconds("cooldown_seconds", 'how long a tripped program stays off with reenable = "after"'),
), expect="a table: [breaker]", make=BreakerConfig)

BTF = Section((
    Field("dir", str, expect="a directory path", help="holds <kernel release>.btf files"),
    Field("files", dict, expect='a table of "<kernel release>" = "<BTF file>"',
          read=table_of(Field("", str, expect="a BTF file path", check=bool)),
          help="<kernel release> = <BTF file>"),
), expect="a table: [btf] with dir and/or files", make=BtfConfig)

TOP = Section((
    Field("listen", str, check=_listen_problem, help="HOST:PORT of /metrics"),
    Field("registry", str, help="the program registry directory"),
    Field("pin_root", str, help="bpffs directory for pinned maps and links"),
    Field("admin_socket", str, help="the root-only admin API socket"),
    Field("programs", dict, expect="a table of [programs.<name>] tables", read=read_programs),
    Field("trusted_keys", list, expect="a list of public key file paths", convert=tuple,
          read=list_of(Field("", str, expect="a public key file path",
                             check=lambda k: Path(k).is_file() or f"{k}: no such file")),
          help="ed25519 public keys: set, only artifacts signed by one of them load"),
    Field("otlp", read=OTLP.read),
    Field("breaker", read=BREAKER.read),
    Field("btf", read=BTF.read),
    Field("mitigations", dict, expect="a table of [mitigations.<name>] tables", read=read_mitigations),
    Field("accept_mitigations", bool, help="keep what attaching mitigations needs (implied by [mitigations])"),
))


def parse(text: str, path: str) -> Config:
    try:
        doc = tomli.loads(text)
    except tomli.TOMLDecodeError as e:
        raise ProblemsError([Problem(path, "", f"not valid TOML: {e}")])
    r = Reader(path)
    values = TOP.read(r, doc, "")
    programs, mitigations = doc.get("programs"), doc.get("mitigations")
    if isinstance(programs, dict) and isinstance(mitigations, dict):
        for name in sorted(mitigations.keys() & programs.keys()):
            r.bad(f"mitigations.{name}", f"{name} is also in [programs]; enable it in one place")
    r.raise_if_any()
    values["accept_mitigations"] = values.get("accept_mitigations") is True or mitigations is not None
    return Config(path, **values)


def load(path: str | None) -> Config:
    if path is None:
        return default_config()
    try:
        text = Path(path).read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as e:
        raise ProblemsError([Problem(path, "", f"cannot read: {e}")])
    return parse(text, path)
