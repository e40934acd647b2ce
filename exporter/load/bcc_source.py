"""Loading a bcc-source registry artifact (docs/manifest.md#bcc-source-programs): compile with
bcc (exporter/bcc.py, the bcc boundary), bind the manifest to the tables' layouts, and
wire its maps to the same readers and collectors as a CO-RE object's."""
from __future__ import annotations

import os
import time

from core import binding as schema
from core.manifest import Manifest
from core.problems import Problem
from core.registry import Artifact
from exporter import bcc as bccsource
from exporter.load.errors import LoadError, NotApplicableOnHost
from exporter.load.program import LoadedProgram, wire


def source_path(artifact: Artifact):
    return artifact.dir / f"{artifact.name}.bcc.c"


def _compile(artifact: Artifact, m: Manifest, attach: bool) -> bccsource.BccObject:
    if (why := bccsource.not_applicable_reason()) is not None:
        raise NotApplicableOnHost(str(source_path(artifact)), why)
    try:
        return bccsource.BccObject(str(source_path(artifact)), m.bcc, attach)
    except Exception as e:   # bcc raises bare Exceptions; clang's errors went to stderr
        lines = str(e).strip().splitlines() or [type(e).__name__]
        raise LoadError(str(source_path(artifact)), f"bcc could not compile, load or attach it: "
                        f"{lines[0]}", "\n".join(lines[1:30]))


def _bind(obj, m: Manifest) -> schema.ProgramPlan:
    plan, problems = schema.bind(m, obj.maps(), obj.btf_records(), [])
    for mp in plan.metrics if plan else ():
        # Dashboards and checks read a bcc program's label names from its manifest (nothing is
        # compiled there), so every key field must appear under labels.
        unnamed = [lp.source for lp in mp.labels if lp.source not in mp.spec.labels]
        if unnamed:
            problems.append(Problem(m.path, f"{mp.spec.where}.labels", f"key field(s) "
                                    f"{', '.join(unnamed)} of table {mp.source} need an entry "
                                    "(a bcc-source program names every key field it exports: "
                                    "labels.<field> = {} keeps the name)"))
    if problems:
        obj.close()
        raise LoadError.from_problems(problems)
    return plan


def verify_bcc(artifact: Artifact, m: Manifest) -> schema.ProgramPlan:
    """Compile and load every function, attach none, bind the manifest; nothing stays loaded."""
    obj = _compile(artifact, m, attach=False)
    plan = _bind(obj, m)
    obj.close()
    return plan


def load_bcc(artifact: Artifact, m: Manifest, pin_root: str) -> LoadedProgram:
    """Compile, load and attach; its tables are read like CO-RE maps. An upgrade attaches the
    new version before the old one is closed, but maps do not carry over (bcc has no reuse)."""
    obj = _compile(artifact, m, attach=True)
    plan = _bind(obj, m)
    try:
        tag = artifact.version.replace(".", "_")
        pin_dir = os.path.join(pin_root, artifact.name, f"{tag}-{time.monotonic_ns()}")
        prog = LoadedProgram(artifact, plan, obj, pin_dir, {})
        wire(prog)
        obj.pin(pin_dir)
        return prog
    except BaseException:
        obj.close()
        raise
