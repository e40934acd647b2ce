"""`bpfleet programs build` and `check`: compile program directories and validate manifests."""
from __future__ import annotations

import shutil
import subprocess
import tempfile
from dataclasses import dataclass
from pathlib import Path

from core import manifest as manifest_mod
from core import registry as reg, resources
from core import binding as schema
from core.problems import Problem, ProblemsError

CLANG = "clang"
CFLAGS = ["-g", "-O2", "-target", "bpf", "-mcpu=v3", "-D__TARGET_ARCH_x86", "-Wall",
          "-Wno-unused-function"]


@dataclass
class BuildResult:
    source: str
    ref: str = ""
    digest: str = ""
    status: str = "failed"       # "built", "unchanged", "failed"
    problems: list[Problem] = None

    def as_dict(self) -> dict:
        return {"source": self.source, "program": self.ref, "digest": self.digest,
                "status": self.status, "problems": [p.as_dict() for p in self.problems or []]}


def inspect_object(path: Path):
    """(maps, BTF records, program types, program names) of an object file, via libbpf; no
    privileges needed."""
    from exporter.libbpf import BpfObject, LibbpfError
    try:
        with BpfObject(str(path)) as obj:
            progs = obj.programs()
            return obj.maps(), obj.btf_records(), [p.type for p in progs], [p.name for p in progs]
    except LibbpfError as e:
        raise ProblemsError([Problem(str(path), "", f"not a loadable BPF object: {e.explain()}")])


def variant_objects(m: manifest_mod.Manifest) -> list[str]:
    """Stems of the variants' objects of their own (besides <name>.bpf.o)."""
    return list(dict.fromkeys(v.object for v in m.variants if v.object))


def check_manifest_against(m: manifest_mod.Manifest, obj_path: Path) -> schema.ProgramPlan:
    """Bind the manifest to the object and to every variant object beside it."""
    from core import variants
    plan, names, problems = None, {}, []
    for stem in [None, *variant_objects(m)]:
        path = obj_path if stem is None else obj_path.parent / f"{stem}.bpf.o"
        if stem is not None and not path.is_file():
            names[stem] = None
            continue
        maps, records, types, names[stem] = inspect_object(path)
        p, found = schema.bind(m, maps, records, types)
        problems += found
        plan = plan or p
    problems += variants.check(m, {k: v for k, v in names.items() if v is not None})
    if problems:
        raise ProblemsError(problems)
    return plan


def compile_program(src_dir: Path, name: str, out: Path, include_dirs: list[Path]) -> None:
    src = src_dir / f"{name}.bpf.c"
    # Map build paths to fixed ones so the object (its BTF line info) doesn't depend on
    # where the checkout lives: same sources, same digest, on every machine.
    cmd = [CLANG, *CFLAGS, f"-I{src_dir}", *[f"-I{d}" for d in include_dirs],
           f"-fdebug-prefix-map={src_dir}=/bpfleet/{name}",
           *[f"-fdebug-prefix-map={d}=/bpfleet/include" for d in include_dirs],
           "-c", str(src), "-o", str(out)]
    r = subprocess.run(cmd, capture_output=True, text=True, cwd=src_dir)
    if r.returncode != 0:
        tail = "\n".join(r.stderr.strip().splitlines()[-20:])
        raise ProblemsError([Problem(str(src), "", f"clang failed:\n{tail}")])
    # DWARF is only for humans; BTF (what libbpf and bpfleet read) stays.
    subprocess.run(["llvm-strip", "-g", str(out)], check=True, capture_output=True)


def build_dir(src_dir: Path, registry: Path, include_dirs: list[Path] | None = None) -> BuildResult:
    src_dir = src_dir.resolve()
    result = BuildResult(str(src_dir))
    try:
        m, problems = manifest_mod.load(str(src_dir / "manifest.toml"))
        if problems:
            raise ProblemsError(problems)
        if m.name != src_dir.name:
            raise ProblemsError([Problem(m.path, "name", f"{m.name!r} must equal the directory "
                                         f"name {src_dir.name!r}")])
        result.ref = f"{m.name}@{m.version}"
        if m.bcc is not None:
            return _publish_bcc(src_dir, m, registry, result)
        if not (src_dir / f"{m.name}.bpf.c").is_file():
            raise ProblemsError([Problem(str(src_dir), "", f"missing {m.name}.bpf.c")])
        with tempfile.TemporaryDirectory(prefix="bpfleet-build-") as tmp:
            staged = Path(tmp)
            obj = staged / f"{m.name}.bpf.o"
            includes = [*(include_dirs or []), resources.include_dir()]
            compile_program(src_dir, m.name, obj, includes)
            for stem in variant_objects(m):
                if not (src_dir / f"{stem}.bpf.c").is_file():
                    raise ProblemsError([Problem(m.path, "variants", f"missing {stem}.bpf.c "
                                                 "(a variant's `object`)")])
                compile_program(src_dir, stem, staged / f"{stem}.bpf.o", includes)
            check_manifest_against(m, obj)
            for f in [src_dir / "manifest.toml", src_dir / f"{m.name}.bpf.c", src_dir / f"{m.name}.h",
                      *(src_dir / f"{stem}.bpf.c" for stem in variant_objects(m))]:
                if f.is_file():
                    shutil.copy(f, staged / f.name)
            artifact, new = reg.publish(registry, m.name, m.version, staged, m.path)
        result.digest, result.status = artifact.digest, "built" if new else "unchanged"
    except ProblemsError as e:
        result.problems = e.problems
    return result


def _publish_bcc(src_dir: Path, m: manifest_mod.Manifest, registry: Path, result: BuildResult) -> BuildResult:
    """A bcc-source program ships its C source: bcc compiles it on each host at load time, so
    its table layouts are checked there (exporter/load/bcc_source.py), not here."""
    src = src_dir / f"{m.name}.bcc.c"
    if not src.is_file():
        raise ProblemsError([Problem(str(src_dir), "", f"missing {m.name}.bcc.c (the manifest has [bcc])")])
    with tempfile.TemporaryDirectory(prefix="bpfleet-build-") as tmp:
        for f in (src_dir / "manifest.toml", src):
            shutil.copy(f, Path(tmp) / f.name)
        artifact, new = reg.publish(registry, m.name, m.version, Path(tmp), m.path)
    result.digest, result.status = artifact.digest, "built" if new else "unchanged"
    return result


def check_artifact(artifact: reg.Artifact) -> list[Problem]:
    m, problems = manifest_mod.load(str(artifact.manifest_path))
    if problems:
        return problems
    if m.bcc is not None:   # layouts need bcc's compile on a host with headers: verify does it
        src = artifact.dir / f"{m.name}.bcc.c"
        return [] if src.is_file() else [Problem(str(artifact.dir), "", f"missing {src.name}")]
    try:
        check_manifest_against(m, artifact.object_path)
    except ProblemsError as e:
        return e.problems
    return []
