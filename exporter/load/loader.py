"""Which loader an artifact needs, decided in one place: a CO-RE object (exporter/load/co_re.py)
or bcc source (exporter/load/bcc_source.py). The manifest is read once, when the artifact is
resolved, and handed down to everything that needs it (`Resolved`)."""
from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from core import manifest as manifest_mod, registry as reg
from core.manifest import Manifest
from core.problems import ProblemsError
from core.registry import Artifact
from exporter.config import AttachTargets
from exporter.load.bcc_source import load_bcc, verify_bcc
from exporter.load.co_re import load_core, verify_core
from exporter.load.errors import LoadError
from exporter.load.program import LoadedProgram


@dataclass(frozen=True)
class Resolved:
    """An artifact found (and checked) in the registry, with its manifest read."""
    artifact: Artifact
    manifest: Manifest


def read(artifact: Artifact) -> Resolved:
    """`artifact` with its manifest. ProblemsError: the manifest's problems."""
    m, problems = manifest_mod.load(str(artifact.manifest_path))
    if problems:
        raise ProblemsError(problems)
    return Resolved(artifact, m)


def resolve(registry: Path, name: str, version: str = "latest", trusted_keys=None) -> Resolved:
    """name@version from `registry` (digests and, with `trusted_keys`, signature checked) with
    its manifest. ProblemsError says what is wrong."""
    return read(reg.resolve(registry, name, version, list(trusted_keys or ()) or None))


def load(r: Resolved, knobs: dict, pin_root: str, config_where: str,
         previous: LoadedProgram | None = None, variant: str | None = None,
         btf_path: str | None = None,
         attach: AttachTargets | None = None) -> tuple[LoadedProgram, list[str]]:
    """Load and attach `r` (upgrading `previous` when given). -> (program, maps shared with
    `previous`). LoadError (NotApplicableOnHost: cannot run here by design)."""
    if r.manifest.bcc is not None:
        if knobs or variant:
            raise LoadError(config_where, "a bcc-source program has no knobs and no variants")
        return load_bcc(r.artifact, r.manifest, pin_root), []
    return load_core(r.artifact, r.manifest, knobs, pin_root, config_where, previous, variant,
                     btf_path, attach)


def verify(r: Resolved, knobs: dict, config_where: str, variant: str | None = None,
           btf_path: str | None = None, variant_where: str = "--variant"):
    """Everything a load does but attach; nothing runs and nothing stays loaded (the rollout
    preflight). -> (plan, the variant that would run or None, verdicts)"""
    if r.manifest.bcc is not None:
        return verify_bcc(r.artifact, r.manifest), None, ()
    return verify_core(r.artifact, r.manifest, knobs, config_where, variant, btf_path, variant_where)
