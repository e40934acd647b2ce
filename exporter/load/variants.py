"""Choosing and loading one attach variant (docs/manifest.md#variants): the loader's loop over
core/variants.py's order, exporter/kernel_features.py's answers, and the kernel's own verdict."""
from __future__ import annotations

from core import variants as variants_mod
from core.manifest import Manifest
from exporter import kernel_features as probe
from exporter.load.errors import LoadError


def with_variants(m: Manifest, forced: str | None, forced_by: str, attempt, open_variant):
    """Run attempt(obj, plan) (which closes obj when it fails) on the best variant this kernel
    allows: open_variant(variant or None) -> (obj, plan) with the other variants' programs off;
    probe each variant's requirements in choice order, try the first that passes, fall back to
    the next when the kernel refuses it. `forced_by` names where `forced` came from (a
    config field, a flag) for errors and reasons. -> (result, variant name or None, verdicts)."""
    if not m.variants:
        if forced:
            raise LoadError.from_problems([variants_mod.forced_problem(m, forced, forced_by, "")])
        return attempt(*open_variant(None)), None, ()
    if forced and (p := variants_mod.forced_problem(m, forced, forced_by, "")):
        raise LoadError.from_problems([p])
    order, tried, last = variants_mod.choose(m.variants, forced), [], None
    V = variants_mod.Verdict
    for v in order:
        obj, plan = open_variant(v)
        progs = [(p.name, p.section, p.type) for p in obj.programs()]
        why = variants_mod.unavailable_reason(
            probe.find_all(variants_mod.requirements(v, m.variants, progs)))
        if why:
            obj.close()
            tried.append(V(v.name, variants_mod.UNAVAILABLE, why))
            continue
        try:
            result = attempt(obj, plan)
        except LoadError as e:
            tried.append(V(v.name, variants_mod.REFUSED, e.message.splitlines()[0]))
            last = e
            continue
        passed = [t.variant for t in tried]
        tried.append(V(v.name, variants_mod.RUNNING, f"forced by {forced_by}" if v.name == forced else
                       f"the best this kernel allows (passed over: {', '.join(passed)})" if passed
                       else "the manifest's first choice, and this kernel allows it"))
        return result, v.name, tuple(variants_mod.verdicts_after(order, tried, forced, forced_by))
    report = tuple(variants_mod.verdicts_after(order, tried, forced, forced_by))
    raise LoadError(f"{m.path}: variants", "no variant works on this kernel: " +
                    "; ".join(f"{t.variant}: {t.reason}" for t in tried),
                    last.log_tail if last else "", report)
