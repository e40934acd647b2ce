"""The exporter config's [programs.<name>] tables, and the fields they share with
[mitigations.<name>] (exporter/mitigations/config.py) and the admin API's deploy body
(exporter/admin.py): version, knobs, attach. Declared once with core/fields.py.

    [programs.syscalls]
    version = "1.2.0"                        # or "latest"
    knobs = { by_process = true }
    budget = { ns_per_event = 500 }          # or false; overrides the manifest's field by field
    max_series = 10000                       # or { syscalls_total = 10000 }
    variant = "fentry"                       # force a [[variants]] entry
    attach = { interfaces = ["eth0"] }       # XDP; cgroup programs: { cgroup = "/sys/fs/cgroup/x" }
    enabled = false                          # keep the table, run nothing
"""
from __future__ import annotations

from dataclasses import dataclass, field

from core import names
from core.fields import Field, Reader, Section, join, table_of
from core.manifest import parse_budget


@dataclass(frozen=True)
class AttachTargets:
    interfaces: tuple[str, ...] = ()   # XDP programs attach to each
    cgroup: str | None = None          # cgroup v2 directory for cgroup programs


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
    attach: AttachTargets | None = None   # where XDP / cgroup programs attach


def _interfaces(v: list) -> bool:
    return all(isinstance(i, str) and 0 < len(i) < 16 and "/" not in i for i in v)


ATTACH = Section((
    Field("interfaces", list, expect="a list of interface names", check=_interfaces, convert=tuple,
          help="network interfaces an XDP program attaches to"),
    Field("cgroup", str, expect="an absolute cgroup v2 directory path", check=lambda c: c.startswith("/"),
          help="the cgroup v2 directory a cgroup program attaches to"),
), expect='a table like { interfaces = ["eth0"] } or { cgroup = "/sys/fs/cgroup/app.slice" }',
    make=AttachTargets)

VERSION = Field("version", default="latest",
                check=lambda v: names.is_version(v) or f"{v!r} is not {names.VERSION_EXPECTED}",
                help='"latest" (the highest in the registry) or MAJOR.MINOR.PATCH')
KNOB_VALUE = Field("", (int, bool), expect="an integer or boolean")
KNOBS = Field("knobs", dict, expect="a table of knob = value", read=table_of(KNOB_VALUE),
              help="values for the manifest's knobs (const volatile globals), set before load")
ENABLED = Field("enabled", bool, default=True, help="false: keep the table, run nothing")
ATTACH_FIELD = Field("attach", read=ATTACH.read, help="where XDP / cgroup programs attach")

_MAX_SERIES = ("expected a positive integer (for every metric of the program) or a table of "
               "metric name = positive integer; got ")


def _max_series(r: Reader, v, where: str):
    for metric, n in (v.items() if isinstance(v, dict) else [(None, v)]):
        if isinstance(n, bool) or not isinstance(n, int) or n < 1:
            r.bad(join(where, metric) if metric is not None else where, f"{_MAX_SERIES}{n!r}")
    return dict(v) if isinstance(v, dict) else v


def _budget(r: Reader, b, where: str):
    return False if b is False else parse_budget(r, b, where, None, complete=False)


PROGRAM = Section((
    VERSION, ENABLED, KNOBS, ATTACH_FIELD,
    Field("budget", check=lambda b: b is False or isinstance(b, dict) or (
        "expected a table like { ns_per_event = 500 }, or false to turn the program's budget off; "
        f"got {b!r}"), read=_budget, help="overrides of the manifest's [budget], or false"),
    Field("max_series", read=_max_series, help="series limit per metric (an int for all, or a table)"),
    Field("variant", expect='a variant name like "fentry"', check=names.is_name,
          help="force this [[variants]] entry"),
), expect='a table: { version = "1.0.0", knobs = {...} }')


def read_program(r: Reader, name: str, spec, where: str) -> ProgramConfig | None:
    """One [programs.<name>] table; None when it has problems (in `r`) or enabled = false."""
    if not names.is_name(name):
        r.bad(where, f"{name!r} is not a program name")
        return None
    values = PROGRAM.read(r, spec, where)
    if values is None or not values.pop("enabled"):
        return None
    return ProgramConfig(name, **values)


def read_programs(r: Reader, table: dict, where: str) -> dict:
    return {name: pc for name, spec in table.items()
            if (pc := read_program(r, name, spec, join(where, name))) is not None}
