"""The `[mitigation]` table of a manifest (docs/mitigations.md): parsing, binding to the object,
and the pure rules of a mitigation's lifecycle (durations, "is this kernel fixed?"). Pure.

A mitigation is an ordinary registry program plus this table: what it answers (CVE, incident),
what it blocks, its default mode, the map holding the mode, its allow/deny lists (BPF maps,
updatable at run time), its TTL and the kernel versions that fix the hole.
"""
from __future__ import annotations

import re
from dataclasses import dataclass

from core.listkinds import KINDS
from core.problems import Problem

MODES = ("monitor", "enforce")          # the value written into the mode map: index in MODES
ROLES = ("allow", "deny")
DECISION_LABELS = ("action", "reason")  # labels the decisions counter must have
ACTIONS = ("would_block", "blocked")    # values of the action label (monitor, enforce)
DURATION_RE = re.compile(r"^(\d+)(s|m|h|d|w)$")
UNIT_SECONDS = {"s": 1, "m": 60, "h": 3600, "d": 86400, "w": 604800}
KERNEL_RE = re.compile(r"^(\d+)\.(\d+)(?:\.(\d+))?")
ID_RE = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._:/-]*$")


class NotRunning(LookupError):
    """A run-time change (mode, list) asked of a mitigation that is not running."""


@dataclass(frozen=True)
class ListSpec:
    name: str
    map: str
    kind: str
    role: str            # "allow" or "deny"
    description: str = ""


@dataclass(frozen=True)
class MitigationSpec:
    answers: tuple[str, ...]        # CVE ids or incident references
    blocks: str                     # what it blocks, in a sentence
    default_mode: str
    mode_map: str
    decisions: str                  # the [[metrics]] counter with action/reason labels
    lists: dict                     # name -> ListSpec
    ttl_seconds: int
    fixed_in: tuple[str, ...] = ()  # kernel versions that fix the hole
    scope: tuple[str, ...] = ("all",)


def parse_duration(value, where: str, bad) -> int | None:
    """"90d", "12h", "30m", "45s", "2w" or an integer number of seconds."""
    if isinstance(value, int) and not isinstance(value, bool) and value > 0:
        return value
    m = DURATION_RE.match(value) if isinstance(value, str) else None
    if m is None or int(m.group(1)) == 0:
        bad(where, f"{value!r} is not a duration like \"30d\", \"12h\", \"90m\" or a positive number of seconds")
        return None
    return int(m.group(1)) * UNIT_SECONDS[m.group(2)]


def parse_kernel_version(text: str) -> tuple[int, int, int] | None:
    m = KERNEL_RE.match(text or "")
    return (int(m.group(1)), int(m.group(2)), int(m.group(3) or 0)) if m else None


def parse(r, t: dict, where: str, metric_types: dict, has_events: bool) -> MitigationSpec | None:
    """The [mitigation] table; `r` is the manifest's problem-recording reader, `metric_types`
    the manifest's metric name -> type."""
    before = len(r.problems)
    r.unknown(t, {"answers", "blocks", "default_mode", "mode_map", "decisions", "lists", "ttl",
                  "fixed_in", "scope"}, where)
    answers = r.get(t, "answers", where, list, required=True, default=[])
    if "answers" in t and not answers:
        r.bad(f"{where}.answers", "name at least one CVE id or incident reference")
    for i, a in enumerate(answers):
        if not isinstance(a, str) or not ID_RE.match(a):
            r.bad(f"{where}.answers[{i}]", f"expected a CVE id or incident reference like \"CVE-2026-31431\", got {a!r}")
    blocks = r.get(t, "blocks", where, str, required=True, default="")
    mode = r.get(t, "default_mode", where, str, default="monitor")
    if mode not in MODES:
        r.bad(f"{where}.default_mode", f"{mode!r} is not one of: {', '.join(MODES)}")
    mode_map = r.get(t, "mode_map", where, str, required=True, default="")
    decisions = r.get(t, "decisions", where, str, required=True, default="")
    if decisions and decisions not in metric_types:
        r.bad(f"{where}.decisions", f"no [[metrics]] entry named {decisions!r} "
              f"(metrics: {', '.join(metric_types) or 'none'})")
    elif decisions and metric_types[decisions] != "counter":
        r.bad(f"{where}.decisions", f"{decisions!r} is a {metric_types[decisions]}; it must be a counter")
    if not has_events:
        r.bad(where, "a mitigation reports what it blocks through a ring buffer: add an [[events]] table")
    ttl = t.get("ttl")
    if ttl is None:
        r.bad(f"{where}.ttl", "required field is missing: a mitigation must expire (\"30d\")")
    else:
        ttl = parse_duration(ttl, f"{where}.ttl", r.bad)
    fixed_in = r.get(t, "fixed_in", where, list, default=[])
    for i, v in enumerate(fixed_in):
        if not isinstance(v, str) or parse_kernel_version(v) is None or not re.match(r"^\d+\.\d+(\.\d+)?$", v):
            r.bad(f"{where}.fixed_in[{i}]", f"expected a kernel version like \"6.1.128\" or \"6.19\", got {v!r}")
    scope = r.get(t, "scope", where, list, default=["all"])
    for i, s in enumerate(scope):
        if not isinstance(s, str) or not s:
            r.bad(f"{where}.scope[{i}]", f"expected an inventory group or host name, got {s!r}")
    lists = _parse_lists(r, r.get(t, "lists", where, dict, default={}), f"{where}.lists")
    if len(r.problems) > before:
        return None
    return MitigationSpec(tuple(answers), blocks, mode, mode_map, decisions, lists, ttl,
                          tuple(fixed_in), tuple(scope) or ("all",))


def _parse_lists(r, table: dict, where: str) -> dict:
    lists = {}
    for name, spec in table.items():
        w = f"{where}.{name}"
        if not isinstance(spec, dict):
            r.bad(w, "expected a table like { map = \"deny_v4\", kind = \"ipv4_prefix\", role = \"deny\" }")
            continue
        r.unknown(spec, {"map", "kind", "role", "description"}, w)
        kind = r.get(spec, "kind", w, str, required=True, default="")
        if kind and kind not in KINDS:
            r.bad(f"{w}.kind", f"{kind!r} is not one of: {', '.join(KINDS)}")
        role = r.get(spec, "role", w, str, required=True, default="")
        if role and role not in ROLES:
            r.bad(f"{w}.role", f"{role!r} is not \"allow\" or \"deny\"")
        lists[name] = ListSpec(name, r.get(spec, "map", w, str, required=True, default=""), kind, role,
                               r.get(spec, "description", w, str, default=""))
    return lists


def bind_problems(spec: MitigationSpec, maps: dict, metric_labels: dict, path: str) -> list[Problem]:
    """Check the table against the object: `maps` name -> MapInfo, `metric_labels` metric
    name -> its label names (after renames)."""
    problems = []

    def bad(where, message):
        problems.append(Problem(path, f"mitigation.{where}", message))
    m = maps.get(spec.mode_map)
    if m is None:
        bad("mode_map", f"the object has no map {spec.mode_map!r} (maps: {', '.join(_user_maps(maps))})")
    elif m.type != "array" or m.value_size != 4 or m.key_size != 4:
        bad("mode_map", f"{spec.mode_map!r} must be an array map of u32 (key u32, value u32: "
            f"0 monitor, 1 enforce); it is a {m.type} with {m.key_size}-byte keys and {m.value_size}-byte values")
    labels = metric_labels.get(spec.decisions)
    if labels is not None:
        for label in DECISION_LABELS:
            if label not in labels:
                bad("decisions", f"{spec.decisions!r} needs an {label!r} label (labels: {', '.join(labels) or 'none'})")
    for name, ls in spec.lists.items():
        m, kind = maps.get(ls.map), KINDS[ls.kind]
        if m is None:
            bad(f"lists.{name}.map", f"the object has no map {ls.map!r} (maps: {', '.join(_user_maps(maps))})")
        elif m.type not in kind.map_types:
            bad(f"lists.{name}.map", f"a {ls.kind} list needs a {' or '.join(kind.map_types)} map; {ls.map!r} is {m.type}")
        elif not kind.key_size_ok(m.key_size):
            bad(f"lists.{name}.map", f"a {ls.kind} key is {kind.key_size_text}; {ls.map!r} has {m.key_size}-byte keys")
    return problems


def _user_maps(maps: dict) -> list[str]:
    return sorted(n for n in maps if "." not in n)


def fixed_by(kernel: str, fixed_in: tuple[str, ...]) -> str | None:
    """The entry of `fixed_in` that says `kernel` has the fix, or None.

    Each entry is the first fixed version of one stable branch (MAJOR.MINOR): a kernel on a
    listed branch is fixed at or after that patch level; a kernel on a newer branch than every
    listed one is fixed by the newest; an unlisted branch older than that is not fixed (the fix
    was never backported to it)."""
    k = parse_kernel_version(kernel)
    versions = [(v, parse_kernel_version(v)) for v in fixed_in]
    if k is None or not versions:
        return None
    for text, v in versions:
        if v[:2] == k[:2]:
            return text if k >= v else None
    newest_text, newest = max(versions, key=lambda tv: tv[1])
    return newest_text if k[:2] > newest[:2] else None
