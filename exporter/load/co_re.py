"""Loading one CO-RE registry artifact into the kernel: open, bind the manifest, probe, set
knobs, choose the variant, load, attach, pin (the loaded program itself: exporter/load/program.py;
which loader an artifact needs: exporter/load/loader.py). The manifest comes read already."""
from __future__ import annotations

import errno
import logging
import os
import re
import time

from core import manifest as manifest_mod, binding as schema, variants as variants_mod
from core.manifest import Manifest
from core.problems import Problem, ProblemsError
from core.registry import Artifact
from exporter import handover, libbpf
from exporter.config import AttachTargets
from exporter.load.errors import LoadError
from exporter.load.program import LoadedProgram, wire
from exporter.load.variants import with_variants

log = logging.getLogger("bpfleet.exporter")
VERIFIER_TAIL_LINES = 30
# libbpf can't probe "tracing" (tp_btf and fentry share it, and only the attach type tells
# them apart), so that one is left to the load itself to report.
UNPROBEABLE_TYPES = {"tracing"}
# libbpf attaches by itself only programs whose section names their hook (tracepoints, raw_tp,
# tp_btf, fentry, kprobes, ...); xdp, tc and cgroup programs need an interface or a cgroup.
NO_ATTACH_TARGET = ("; libbpf cannot attach this section by itself (tc programs, for one), and "
                    "bpfleet attaches only xdp programs to interfaces and cgroup programs to a cgroup")
NEEDS_TARGET = ("; name it in the program's config: attach = { interfaces = [\"eth0\"] } for xdp, "
                "attach = { cgroup = \"/sys/fs/cgroup/...\" } for cgroup programs")


def _plan(m: Manifest, obj: libbpf.BpfObject) -> schema.ProgramPlan:
    plan, problems = schema.bind(m, obj.maps(), obj.btf_records(), [p.type for p in obj.programs()])
    if problems:
        raise LoadError.from_problems(problems)
    return plan


def _probe(plan: schema.ProgramPlan) -> None:
    if plan.manifest.variants:   # each variant's own requirements are probed (exporter/load/variants.py)
        return
    for t in plan.manifest.program_types:
        if t in UNPROBEABLE_TYPES:
            continue
        if t not in libbpf.known_prog_types():
            raise LoadError(f"{plan.manifest.path}: requires.program_types",
                            f"unknown program type {t!r} (libbpf knows: "
                            f"{', '.join(sorted(libbpf.known_prog_types()))})")
        if not libbpf.probe_prog_type(t):
            raise LoadError(f"{plan.manifest.path}: requires.program_types",
                            f"this kernel does not allow BPF programs of type {t!r}")


def knob_bytes(plan: schema.ProgramPlan, knobs: dict, where: str) -> dict[str, bytes]:
    """Encode knob values (config overrides, else manifest defaults), checking names and ranges."""
    problems, out = [], {}
    by_name = {k.name: k for k in plan.knobs}
    for name in knobs:
        if name not in by_name:
            problems.append(Problem(where, f"knobs.{name}", f"{plan.manifest.name} has no knob {name!r} "
                                    f"(knobs: {', '.join(by_name) or 'none'})"))
    for k in plan.knobs:
        v = knobs.get(k.name, k.default)
        if isinstance(v, bool) or isinstance(v, int):
            try:
                out[k.name] = int(v).to_bytes(k.size, "little", signed=k.signed)
                continue
            except OverflowError:
                pass
        problems.append(Problem(where, f"knobs.{k.name}", f"{v!r} does not fit a "
                                f"{'signed' if k.signed else 'unsigned'} {k.size * 8}-bit knob"))
    if problems:
        raise ProblemsError(problems)
    return out


def _refusal_hint(e: libbpf.LibbpfError, btf_custom_path: str | None = None) -> str:
    """Why a load without a verifier log failed, where we can tell."""
    if btf_custom_path and "CO-RE relocation" in e.log + "".join(e.messages):
        return (f" — CO-RE relocations failed against the external BTF file {btf_custom_path}: "
                "it does not describe this kernel's types (a file for another kernel release?)")
    if e.errno == 1 and re.search(r'SEC\("(fentry|fexit|fmod_ret|lsm)', e.what):
        return (" — this kernel refuses this attach type (BPF trampolines or BPF-LSM are not"
                " available here); the program needs a tracepoint / tp_btf variant")
    return ""


def _kernel_load(obj: libbpf.BpfObject) -> None:
    try:
        obj.load()
    except libbpf.LibbpfError as e:
        tail = "\n".join(e.log.strip().splitlines()[-VERIFIER_TAIL_LINES:]) or "\n".join(e.messages[-10:])
        raise LoadError(obj.path, f"kernel refused to load: {e}{_refusal_hint(e, obj.btf_custom_path)}", tail)


def object_path(artifact: Artifact, variant: manifest_mod.VariantSpec | None):
    return artifact.dir / f"{variant.object}.bpf.o" if variant and variant.object else artifact.object_path


def _open_configured(artifact: Artifact, m: Manifest, knobs: dict, config_where: str,
                     variant: manifest_mod.VariantSpec | None = None, btf_path: str | None = None):
    """Open the object (the variant's; CO-RE against `btf_path` if given, else the kernel's own
    BTF), bind its manifest, probe the kernel, write the knobs, turn off the other variants'
    programs. -> (obj, plan)"""
    path = object_path(artifact, variant)
    try:
        obj = libbpf.BpfObject(str(path), btf_path)
    except libbpf.LibbpfError as e:
        raise LoadError(str(path), f"not a loadable BPF object: {e.explain()}")
    try:
        plan = _plan(m, obj)
        if variant is not None:
            names = [p.name for p in obj.programs()]
            wanted = variants_mod.programs_of(variant, plan.manifest.variants, names)
            for name in names:
                if name not in wanted:
                    obj.set_autoload(name, False)
        _probe(plan)
        try:
            encoded = knob_bytes(plan, knobs, config_where)
        except ProblemsError as e:
            raise LoadError.from_problems(e.problems)
        for k in plan.knobs:
            obj.write_initial(obj.section_map(k.section), k.offset, encoded[k.name])
        return obj, plan
    except BaseException:
        obj.close()
        raise


def verify_core(artifact: Artifact, m: Manifest, knobs: dict, config_where: str,
                variant: str | None = None, btf_path: str | None = None,
                variant_where: str = "--variant"):
    """Everything a load does but attach: BTF binding, kernel probe, knobs, verifier, variant
    choice. Nothing runs and nothing stays loaded. -> (plan, variant or None, verdicts)"""
    def attempt(obj, plan):
        with obj:
            _kernel_load(obj)
        return plan
    return with_variants(m, variant, variant_where, attempt,
                         lambda v: _open_configured(artifact, m, knobs, config_where, v, btf_path))


def load_core(artifact: Artifact, m: Manifest, knobs: dict, pin_root: str, config_where: str,
              previous: LoadedProgram | None = None, variant: str | None = None,
              btf_path: str | None = None,
              attach: AttachTargets | None = None) -> tuple[LoadedProgram, list[str]]:
    """Open, check, set knobs, load and attach the best variant of `artifact` (`variant`:
    the config forces one; docs/manifest.md#variants). -> (program, maps shared with `previous`)."""
    def attempt(obj, plan):
        return _load_attach(artifact, obj, plan, knobs, pin_root, previous, attach)
    (prog, reused), name, verdicts = with_variants(
        m, variant, f"{config_where}.variant", attempt,
        lambda v: _open_configured(artifact, m, knobs, config_where, v, btf_path))
    prog.variant, prog.variants = name, verdicts
    return prog, reused


def _load_attach(artifact, obj, plan, knobs, pin_root, previous, attach):
    try:
        generation = previous.generation + 1 if previous else 1
        gated = handover.set_generation(obj, generation)
        reused = handover.reuse_maps(obj, previous.obj) if previous else []
        _kernel_load(obj)
        # Unique per load: an upgrade to the same version (new knobs) pins beside the old one.
        # bpffs refuses names with dots, hence 1_2_0.
        tag = artifact.version.replace(".", "_")
        pin_dir = os.path.join(pin_root, artifact.name, f"{tag}-{time.monotonic_ns()}")
        prog = LoadedProgram(artifact, plan, obj, pin_dir, dict(knobs), generation=generation)
        wire(prog)
        gate_shared = handover.GATE_MAP in reused
        if gated and not gate_shared:  # nobody to hand over from: count as soon as attached
            handover.open_gate(obj, generation)
        targets = attach or AttachTargets()
        prog.attach = targets
        handed_over = previous is not None and "xdp" in plan.manifest.program_types
        if handed_over:
            # An interface holds one XDP program: the old one goes first (a brief gap, no overlap).
            previous.obj.detach_all()
        try:
            obj.attach_all(targets.interfaces, targets.cgroup)
        except libbpf.LibbpfError as e:
            if handed_over:   # put the old one back: a failed upgrade leaves it serving
                previous.obj.attach_all(previous.attach.interfaces, previous.attach.cgroup)
            raise LoadError(obj.path, f"could not attach: {e.explain(2)}"
                            + (NO_ATTACH_TARGET if e.errno == errno.EOPNOTSUPP else
                               NEEDS_TARGET if e.errno == errno.EINVAL and not (targets.interfaces or targets.cgroup)
                               else ""))
        if previous is not None:
            if gate_shared:
                handover.open_gate(obj, generation)  # the commit point
            previous.obj.detach_all()
        try:
            # An interface holds one XDP link: a pinned one would outlive detach_all() (released
            # later from a workqueue), and the next version's attach would get EBUSY.
            obj.pin(pin_dir, links="xdp" not in plan.manifest.program_types)
        except libbpf.LibbpfError as e:  # pins are for bpftool and crash cleanup, not for counting
            log.warning("%s: could not pin under %s: %s", artifact.ref, pin_dir, e)
        return prog, reused
    except BaseException:
        obj.close()
        raise
