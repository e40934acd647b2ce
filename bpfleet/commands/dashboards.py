"""`bpfleet dashboards build [--out DIR] [--check]`: Grafana dashboards from the program manifests."""
from __future__ import annotations

import sys
import tempfile
from pathlib import Path

from orchestrator import build
from core import manifest as manifest_mod, registry as reg, resources
from core.problems import ProblemsError

# orchestrator.dashboards (the Grafana SDK) is imported where it is used: fleet hosts run `bpfleet
# exporter` and `bpfleet programs verify` from a venv without the control machine's extras.

DEFAULT_OUT = (resources.checkout_root() or Path()) / "dashboards"   # installed: ./dashboards


def add_parser(sub, registry_arg) -> None:
    p = sub.add_parser("dashboards", help="generate Grafana dashboards from the program manifests",
                       description="Grafana dashboards and provisioning files generated from the "
                       "programs' manifests and objects (see docs/dashboards.md).")
    psub = p.add_subparsers(dest="action", required=True, metavar="ACTION")
    b = psub.add_parser("build", help="(re)generate the dashboards",
                        description="Build the programs (the built-in ones, or each DIR) into a "
                        "temporary registry, or take the latest version of every program in "
                        "--registry, and write one dashboard per program, the fleet overview and "
                        "Grafana provisioning files into --out. Output is deterministic. With "
                        "--check, write nothing: exit 1 and list the files that are stale.")
    b.add_argument("dirs", nargs="*", metavar="DIR", type=Path,
                   help="program directories (default: the built-in programs)")
    b.add_argument("--out", type=Path, default=DEFAULT_OUT,
                   help="output directory (default: the checkout's dashboards/, installed: ./dashboards)")
    b.add_argument("--registry", type=Path, default=None,
                   help="take the programs from this registry (latest version of each) instead of building")
    b.add_argument("--check", action="store_true",
                   help="compare with --out instead of writing; exit 1 if anything is stale")
    b.set_defaults(run=run_build)


def views_from_registry(registry: Path, names: list[str] | None = None) -> list:
    """ProgramView of the latest version of each program (all, or `names`) in a registry."""
    from orchestrator.dashboards import from_plan
    from orchestrator.dashboards.model import from_bcc_manifest
    views = []
    for name in names if names is not None else reg.names(registry):
        artifact = reg.resolve(registry, name)
        m, problems = manifest_mod.load(str(artifact.manifest_path))
        if problems:
            raise ProblemsError(problems)
        if m.bcc is not None:
            views.append(from_bcc_manifest(m))
            continue
        views.append(from_plan(build.check_manifest_against(m, artifact.object_path)))
    return views


def views_from_dirs(dirs: list[Path]) -> list:
    """Build program directories into a throwaway registry and bind each manifest to its object."""
    with tempfile.TemporaryDirectory(prefix="bpfleet-dashboards-") as tmp:
        registry = Path(tmp)
        names, problems = [], []
        for d in dirs:
            r = build.build_dir(d, registry)
            if r.problems:
                problems += r.problems
            else:
                names.append(r.ref.partition("@")[0])
        if problems:
            raise ProblemsError(problems)
        return views_from_registry(registry, names)


def generated_files(dirs: list[Path] | None = None, registry: Path | None = None) -> dict[str, str]:
    """Relative path -> content of everything `dashboards build` writes."""
    if registry is not None:
        views = views_from_registry(registry)
    else:
        dirs = dirs or sorted(d for d in resources.programs_dir().iterdir() if (d / "manifest.toml").is_file())
        views = views_from_dirs(dirs)
    from orchestrator.dashboards import generate
    return generate(views)


def stale_files(files: dict[str, str], out: Path, orphans: bool = True) -> list[tuple[str, str]]:
    """(relative path, why) for every file in `out` that differs from `files`, is missing, or
    (with `orphans`: `files` is the whole set) is a dashboard that would no longer be generated."""
    from orchestrator.dashboards.generator import GENERATED_RE
    stale = []
    for rel, content in sorted(files.items()):
        path = out / rel
        if not path.is_file():
            stale.append((rel, "missing"))
        elif path.read_bytes() != content.encode("utf-8"):
            stale.append((rel, "differs"))
    for path in sorted(out.glob("*.json")) if orphans and out.is_dir() else []:
        if GENERATED_RE.match(path.name) and path.name not in files:
            stale.append((path.name, "no longer generated (its program is gone)"))
    return stale


def write_files(files: dict[str, str], out: Path, orphans: bool = True) -> list[tuple[str, str]]:
    """Write what differs, remove dashboards of programs that are gone. -> (path, action)."""
    done = []
    for rel, why in stale_files(files, out, orphans):
        path = out / rel
        if rel in files:
            path.parent.mkdir(parents=True, exist_ok=True)
            path.write_text(files[rel], encoding="utf-8")
            done.append((rel, "written"))
        else:
            path.unlink()
            done.append((rel, "removed"))
    return done


def run_build(args) -> int:
    if args.registry is not None and args.dirs:
        print("error: give program directories or --registry, not both", file=sys.stderr)
        return 2
    if args.registry is not None and not reg.names(args.registry):
        print(f"error: registry {args.registry} holds no programs; run `bpfleet programs build`",
              file=sys.stderr)
        return 2
    try:
        files = generated_files(args.dirs, args.registry)
    except ProblemsError as e:
        for p in e.problems:
            print(f"error: {p}", file=sys.stderr)
        return 2
    out = args.out
    # Only a complete set (the built-ins, or a whole registry) says which dashboards are gone.
    orphans = not args.dirs
    if args.check:
        stale = stale_files(files, out, orphans)
        for rel, why in stale:
            print(f"stale: {out / rel}: {why}", file=sys.stderr)
        if stale:
            print("run `bpfleet dashboards build` and commit the result", file=sys.stderr)
            return 1
        print(f"{len(files)} files in {out} are up to date")
        return 0
    done = write_files(files, out, orphans)
    for rel, action in done:
        print(f"{action:<8} {out / rel}")
    print(f"{len(files)} files in {out}, {len(done)} changed")
    return 0
