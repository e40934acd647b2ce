"""What a deploy must pass besides the kernel's own checks: plain functions on a manifest, the
config and what runs (exporter/supervisor.py calls them)."""
from __future__ import annotations

from pathlib import Path

from core import registry as reg
from core.manifest import Manifest
from core.problems import Problem, ProblemsError
from exporter.config import ProgramConfig
from exporter.load.errors import LoadError


def check_metric_names(m: Manifest, name: str, running) -> None:
    """Two programs exporting one metric name would make the exposition invalid. `running`:
    the LoadedPrograms that run now."""
    mine = {spec.name for spec in m.metrics}
    for other in running:
        if other.name != name:
            both = mine & {mp.spec.name for mp in other.plan.metrics}
            if both:
                raise LoadError(f"{m.path}: metrics", f"metric {', '.join(sorted(both))} "
                                f"is already exported by {other.artifact.ref}")


def check_overrides(m: Manifest, ref: str, pc: ProgramConfig | None, source: str) -> None:
    """The config's max_series and budget overrides (`pc`, from `source`) must name what the
    program has. ProblemsError names the config field."""
    if pc is None or (not isinstance(pc.max_series, dict) and not pc.budget):
        return
    where, problems = f"programs.{pc.name}", []
    names = [spec.name for spec in m.metrics]
    for metric in pc.max_series if isinstance(pc.max_series, dict) else ():
        if metric not in names:
            problems.append(Problem(source, f"{where}.max_series.{metric}",
                                    f"{ref} has no metric {metric!r} (metrics: {', '.join(names) or 'none'})"))
    degrade = getattr(pc.budget, "degrade", None)
    if degrade is not None and degrade.knob not in m.knobs:
        problems.append(Problem(source, f"{where}.budget.degrade.knob",
                                f"{ref} has no knob {degrade.knob!r} "
                                f"(knobs: {', '.join(sorted(m.knobs)) or 'none'})"))
    if problems:
        raise ProblemsError(problems)


def same_as_running(running, wanted: ProgramConfig, pc: ProgramConfig, registry: Path) -> bool:
    """Is `pc` exactly what already runs (`running`, deployed as `wanted`): same resolved
    version, same knobs, variant and attach targets?"""
    if running.knobs != pc.knobs or wanted.variant != pc.variant or wanted.attach != pc.attach:
        return False
    if pc.version != "latest":
        return pc.version == running.artifact.version
    versions = reg.versions(registry, pc.name)
    return bool(versions) and versions[-1] == running.artifact.version
