"""The manifest's kernel-portability parts (docs/manifest.md#variants, #bcc-source-programs):
attach variants and bcc-source programs. Pure, like core/manifest.py, which calls these with
its problem-recording reader `r` (get / bad / unknown)."""
from __future__ import annotations

from dataclasses import dataclass

from core.names import IDENT_RE, NAME_RE


@dataclass(frozen=True)
class VariantSpec:
    """One way to attach the program (docs/manifest.md#variants): a group of its BPF programs,
    in the program's own object or in an object of its own."""
    where: str                # "variants[0]"
    name: str
    programs: tuple[str, ...] = ()   # BPF programs (C function names); () with `object`: all of them
    object: str | None = None        # stem of another .bpf.c in the program directory
    description: str = ""
    helpers: tuple[str, ...] = ()    # helpers to probe for besides what the sections imply


@dataclass(frozen=True)
class BccAttach:
    kind: str                 # kprobe | kretprobe | tracepoint | raw_tracepoint
    target: str               # function, "category:name" tracepoint, or raw tracepoint name
    fn: str                   # the C function in <name>.bcc.c


@dataclass(frozen=True)
class BccSpec:
    """[bcc]: the program is C source for bcc's BPF(text=...) (docs/manifest.md#bcc-source-programs)."""
    attach: tuple[BccAttach, ...]
    cflags: tuple[str, ...] = ()


def parse_variants(r, items: list, program: str) -> tuple[VariantSpec, ...]:
    """[[variants]], best first. Which programs exist is checked against the object later
    (core/variants.py `check`)."""
    out = []
    for i, t in enumerate(items):
        where = f"variants[{i}]"
        if not isinstance(t, dict):
            r.bad(where, "expected a table like { name = \"fentry\", programs = [\"...\"] }")
            continue
        before = len(r.problems)
        r.unknown(t, {"name", "programs", "object", "description", "helpers"}, where)
        name = r.get(t, "name", where, str, required=True, default="")
        if name and not NAME_RE.match(name):
            r.bad(f"{where}.name", f"{name!r} must match {NAME_RE.pattern}")
        lists = {}
        for key in ("programs", "helpers"):
            lists[key] = r.get(t, key, where, list, default=[])
            for j, v in enumerate(lists[key]):
                if not isinstance(v, str) or not IDENT_RE.match(v):
                    r.bad(f"{where}.{key}[{j}]", f"expected a C identifier, got {v!r}")
        obj = r.get(t, "object", where, str)
        if obj is not None and not NAME_RE.match(obj):
            r.bad(f"{where}.object", f"{obj!r} is not the stem of a .bpf.c in the program's "
                  f"directory (like {program or 'name'}_kprobe for {program or 'name'}_kprobe.bpf.c)")
        if obj is None and not lists["programs"] and "programs" not in t:
            r.bad(f"{where}.programs", "required: the BPF programs (C function names) of this "
                  "variant, unless `object` names an object of its own")
        if len(r.problems) == before:
            out.append(VariantSpec(where, name, tuple(lists["programs"]), obj,
                                   r.get(t, "description", where, str, default=""),
                                   tuple(h.removeprefix("bpf_") for h in lists["helpers"])))
    seen = set()
    for v in out:
        if v.name in seen:
            r.bad("variants", f"name {v.name!r} appears twice")
        seen.add(v.name)
    if len(items) == 1:
        r.bad("variants", "one variant is no choice: give two or more, or none")
    return tuple(out)


BCC_ATTACH_KINDS = ("kprobe", "kretprobe", "tracepoint", "raw_tracepoint")


def parse_bcc(r, t: dict, doc: dict) -> BccSpec | None:
    """[bcc] attach = [{ kprobe = "fn_in_kernel", fn = "c_function" }, ...], cflags = [...].
    bcc tables have no BTF and no globals the exporter can see: metrics come from maps only."""
    before = len(r.problems)
    r.unknown(t, {"attach", "cflags"}, "bcc")
    attach = []
    items = r.get(t, "attach", "bcc", list, required=True, default=[])
    if "attach" in t and not items:
        r.bad("bcc.attach", "give at least one attach point")
    for i, a in enumerate(items):
        w = f"bcc.attach[{i}]"
        if not isinstance(a, dict):
            r.bad(w, "expected a table like { kprobe = \"vfs_read\", fn = \"trace_read\" }")
            continue
        r.unknown(a, {"fn", *BCC_ATTACH_KINDS}, w)
        kinds = [k for k in BCC_ATTACH_KINDS if k in a]
        if len(kinds) != 1:
            r.bad(w, f"exactly one of {', '.join(BCC_ATTACH_KINDS)} is needed")
            continue
        target = r.get(a, kinds[0], w, str, default="")
        fn = r.get(a, "fn", w, str, required=True, default="")
        if fn and not IDENT_RE.match(fn):
            r.bad(f"{w}.fn", f"{fn!r} is not a C function name")
        if kinds[0] == "tracepoint" and target and ":" not in target:
            r.bad(f"{w}.tracepoint", f"{target!r}: give category:name (block:block_rq_issue)")
        attach.append(BccAttach(kinds[0], target, fn))
    cflags = r.get(t, "cflags", "bcc", list, default=[])
    if not all(isinstance(c, str) for c in cflags):
        r.bad("bcc.cflags", "expected a list of strings")
    for key in ("knobs", "variants"):
        if doc.get(key):
            r.bad(key, f"a bcc-source program has no {key} (they are for CO-RE objects)")
    for i, m in enumerate(doc.get("metrics", []) if isinstance(doc.get("metrics"), list) else []):
        if isinstance(m, dict) and "global" in m:
            r.bad(f"metrics[{i}].global", "a bcc-source program exports maps (tables) only")
    if len(r.problems) > before:
        return None
    return BccSpec(tuple(attach), tuple(cflags))
