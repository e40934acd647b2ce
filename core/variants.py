"""Attach variants (docs/manifest.md#variants): what each needs from the kernel, and which runs.

Pure. The exporter's shell (exporter/kernel_features.py) answers the requirements for the running kernel;
`choose` orders the candidates; the loader tries them in that order and records a `Verdict`
for every variant: the one that runs, and why each other one was passed over.
"""
from __future__ import annotations

from dataclasses import dataclass

from core.manifest import Manifest, VariantSpec
from core.problems import Problem

RUNNING, UNAVAILABLE, REFUSED, NOT_TRIED = "running", "unavailable", "refused", "not_tried"


@dataclass(frozen=True)
class Requirement:
    """One thing a BPF program needs from the kernel. kind: prog_type (name: libbpf's type
    name), trampoline (name: fentry|fexit|fmod_ret, target: the function), kernel_btf,
    btf_tracepoint, tracefs_event (target: "category/name" or "*/name"), kprobes, ksym, lsm,
    helper (name: without bpf_, target: the program type)."""
    kind: str
    name: str = ""
    target: str = ""


@dataclass(frozen=True)
class Finding:
    requirement: Requirement
    ok: bool
    reason: str = ""       # why not (or, when ok, how it was decided if not by a probe)


@dataclass(frozen=True)
class Verdict:
    variant: str
    state: str             # running | unavailable | refused | not_tried
    reason: str

    def as_dict(self) -> dict:
        return {"variant": self.variant, "state": self.state, "reason": self.reason}


def requirements_of_section(section: str, prog_type: str) -> list[Requirement]:
    """What a program with libbpf section `section` (SEC("...")) of type `prog_type` needs."""
    kind, _, target = section.partition("/")
    kind = kind.removesuffix(".s")
    if kind in ("fentry", "fexit", "fmod_ret"):
        return [Requirement("kernel_btf"), Requirement("trampoline", kind, target)]
    if kind == "tp_btf":
        return [Requirement("kernel_btf"), Requirement("btf_tracepoint", target=target)]
    if kind in ("raw_tp", "raw_tracepoint"):
        return [Requirement("prog_type", "raw_tracepoint"), Requirement("tracefs_event", target=f"*/{target}")]
    if kind in ("tp", "tracepoint"):
        return [Requirement("prog_type", "tracepoint"), Requirement("tracefs_event", target=target)]
    if kind in ("kprobe", "kretprobe"):
        return [Requirement("prog_type", "kprobe"), Requirement("kprobes"),
                Requirement("ksym", target=target.split("+")[0])]
    if kind == "lsm":
        return [Requirement("kernel_btf"), Requirement("lsm", target=target)]
    return [Requirement("prog_type", prog_type)] if prog_type else []


def programs_of(variant: VariantSpec | None, variants: tuple[VariantSpec, ...],
                programs: list[str]) -> set[str]:
    """The BPF programs to load for `variant` from an object with `programs`: its own, plus
    those that belong to no variant (shared). A variant with an object of its own loads all."""
    if variant is None or variant.object is not None:
        return set(programs)
    claimed = {p for v in variants if v.object is None for p in v.programs}
    return set(variant.programs) | (set(programs) - claimed)


def requirements(variant: VariantSpec | None, variants: tuple[VariantSpec, ...],
                 programs: list[tuple[str, str, str]]) -> list[Requirement]:
    """Everything `variant` needs; `programs`: (name, section, libbpf type) of its object."""
    wanted = programs_of(variant, variants, [p[0] for p in programs])
    out: list[Requirement] = []
    types = []
    for name, section, ptype in programs:
        if name in wanted:
            out += requirements_of_section(section, ptype)
            types.append(ptype)
    for h in (variant.helpers if variant else ()):
        out.append(Requirement("helper", h, types[0] if types else ""))
    return list(dict.fromkeys(out))


def choose(variants: tuple[VariantSpec, ...], forced: str | None) -> list[VariantSpec]:
    """The order to try variants in: the forced one first (if any), then the manifest's order."""
    order = list(variants)
    pick = next((v for v in order if v.name == forced), None)
    if pick is not None:
        order.remove(pick)
        order.insert(0, pick)
    return order


def unavailable_reason(findings: list[Finding]) -> str | None:
    """None when every requirement holds, else the reasons, joined."""
    missing = [f.reason for f in findings if not f.ok]
    return "; ".join(dict.fromkeys(missing)) if missing else None


def verdicts_after(order: list[VariantSpec], tried: list[Verdict], forced: str | None,
                   forced_by: str = "the config") -> list[Verdict]:
    """The full report in manifest order: `tried` (in try order, the last one running or not)
    plus not_tried for the rest. A forced variant that did not run says so in its reason, and
    what forced it (`forced_by`: "--variant", "<config>: programs.tcp.variant")."""
    seen = {v.variant for v in tried}
    running = next((v.variant for v in tried if v.state == RUNNING), None)
    rest = [Verdict(v.name, NOT_TRIED, f"{running} runs: it comes first"
                    + (" (forced)" if running == forced else " in the manifest")) for v in order
            if v.name not in seen]
    out = []
    for v in tried + rest:
        if v.variant == forced and v.state != RUNNING:
            v = Verdict(v.variant, v.state, f"forced by {forced_by}, but {v.reason}; fell back to "
                        f"{running or 'nothing'}")
        out.append(v)
    index = {v.name: i for i, v in enumerate(sorted(order, key=lambda s: s.where))}
    return sorted(out, key=lambda v: index.get(v.variant, 0))


def check(m: Manifest, objects: dict[str | None, list[str]]) -> list[Problem]:
    """Every variant's programs exist in its object; `objects`: object stem (None: the
    program's own) -> its BPF program names."""
    problems = []
    for v in m.variants:
        names = objects.get(v.object)
        if names is None:
            problems.append(Problem(m.path, f"{v.where}.object", f"no object {v.object}.bpf.o "
                                    f"(build it from {v.object}.bpf.c in the program directory)"))
            continue
        for i, p in enumerate(v.programs):
            if p not in names:
                problems.append(Problem(m.path, f"{v.where}.programs[{i}]", f"no BPF program "
                                        f"{p!r} in {v.object or m.name}.bpf.o (programs: {', '.join(sorted(names))})"))
    return problems


def forced_problem(m: Manifest, forced: str, config: str, where: str) -> Problem | None:
    if forced in {v.name for v in m.variants}:
        return None
    have = ", ".join(v.name for v in m.variants) or "none: the manifest has no [[variants]]"
    return Problem(config, where, f"{m.name} has no variant {forced!r} (variants: {have})")
