"""What the control machine ships to hosts: artifact archives and the exporter's wheelhouse.

Both are built once and cached by content: an artifact archive by name, version, digest (and
signature), the wheelhouse by the source of bpfleet, the extras and the Python version.
Archives are deterministic tars (sorted names, no timestamps or owners), so a host that has one
already is recognised by its checksum. What a host needs besides bpfleet is read from the
metadata of the wheel built here: its `exporter` extra (pyproject.toml is the one list).
"""
from __future__ import annotations

import base64
import fnmatch
import hashlib
import importlib.metadata
import io
import os
import shutil
import subprocess
import sys
import tarfile
import tempfile
import zipfile
from dataclasses import dataclass
from pathlib import Path

from core import registry as reg, resources
from core.extras import require

PROJECT = "bpfleet"
# What a wheel of bpfleet is built from (with pyproject.toml), relative to the checkout: the
# packages, bpfleet_data (symlinks) and the folders it points to.
SOURCE_DIRS = ("core", "exporter", "orchestrator", "bpfleet", "bpfleet_data", "programs", "playbooks")
SKIPPED = ("__pycache__", "*.pyc", "*.o")    # build leftovers
# A host gets the exporter extra; signing where signatures are checked (trusted_keys), otlp for
# an [otlp] table. The requirements themselves are read from the wheel's metadata (pyproject.toml).
HOST_EXTRA = "exporter"


class PackagingError(Exception):
    pass


def default_cache() -> Path:
    if os.environ.get("BPFLEET_CACHE"):
        return Path(os.environ["BPFLEET_CACHE"])
    if os.geteuid() == 0:
        return Path("/var/cache/bpfleet")
    return Path(os.environ.get("XDG_CACHE_HOME", Path.home() / ".cache")) / "bpfleet"


def _tar(files: list[tuple[str, Path]]) -> bytes:
    buf = io.BytesIO()
    # pax, not ustar: wheel names pass ustar's 100 characters (charset_normalizer's, which
    # --otlp brings, has 101). pax adds a record only for what ustar can't hold: still deterministic.
    with tarfile.open(fileobj=buf, mode="w", format=tarfile.PAX_FORMAT) as tar:
        for name, path in sorted(files):
            data = path.read_bytes()
            info = tarfile.TarInfo(name)
            info.size, info.mode, info.mtime = len(data), 0o644, 0
            tar.addfile(info, io.BytesIO(data))
    return buf.getvalue()


def _write_atomic(path: Path, data: bytes) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.{os.getpid()}")
    tmp.write_bytes(data)
    os.replace(tmp, path)


# ---- artifacts ----
@dataclass(frozen=True)
class ArtifactArchive:
    name: str
    version: str
    digest: str
    path: str          # the registry directory on the control machine
    archive_b64: str   # the tar of its files, base64, for bpfleet_artifact's `content`


def artifact_archive(registry: str | Path, name: str, version: str, cache: Path,
                     trusted_keys: list[Path] | None = None) -> ArtifactArchive:
    """Resolve name@version in the control machine's registry (digests checked, and the
    signature with `trusted_keys`) and pack it. ProblemsError when it can't be used."""
    a = reg.resolve(Path(registry), name, version, trusted_keys)
    files = [(p.name, p) for p in sorted(a.dir.iterdir()) if p.is_file()]
    sig = a.dir / reg.SIGNATURE
    tag = hashlib.sha256(sig.read_bytes()).hexdigest()[:8] if sig.is_file() else "unsigned"
    out = cache / "artifacts" / f"{a.name}-{a.version}-{a.digest[:16]}-{tag}.tar.b64"
    if not out.is_file():
        _write_atomic(out, base64.b64encode(_tar(files)))
    return ArtifactArchive(a.name, a.version, a.digest, str(a.dir), str(out))


# ---- the wheelhouse ----
@dataclass(frozen=True)
class Wheelhouse:
    archive: str       # a tar of the wheels
    digest: str        # sha256 of the archive: what a host records as installed
    python: str        # MAJOR.MINOR the wheels are for

    def role_vars(self) -> dict:
        return {"bpfleet_exporter_wheelhouse_archive": self.archive,
                "bpfleet_exporter_wheelhouse_digest": self.digest,
                "bpfleet_exporter_wheelhouse_python": self.python}


def host_extras(otlp: bool = False, signing: bool = False) -> tuple[str, ...]:
    return (HOST_EXTRA,) + (("signing",) if signing else ()) + (("otlp",) if otlp else ())


def requirements(requires: list[str], extras: tuple[str, ...], provided: list[str]) -> list[str]:
    """The requirements (Requires-Dist lines of bpfleet's metadata) a venv with bpfleet[extras]
    needs on this Python: the base ones plus each extra's, bpfleet[...] self-references
    followed, markers evaluated here (the wheelhouse is built for this Python only).
    Needs the control extra (`packaging`); importing this module does not: a host's CLI
    imports it for PackagingError."""
    require("control", "Building the host wheelhouse", "packaging.requirements")
    from packaging.requirements import Requirement
    unknown = sorted(set(extras) - set(provided))
    if unknown:
        raise PackagingError(f"{PROJECT} declares no extra {', '.join(unknown)} "
                             f"(it has: {', '.join(sorted(provided))})")
    out: list[str] = []
    seen: set[str] = set()
    todo = ["", *extras]             # "": the base requirements (markers without an extra)
    while todo:
        extra = todo.pop(0)
        if extra in seen:
            continue
        seen.add(extra)
        for line in requires:
            r = Requirement(line)
            if r.marker is not None and not r.marker.evaluate({"extra": extra}):
                continue
            if r.marker is None and extra:
                continue             # a base requirement, taken with extra ""
            if r.name == PROJECT:
                todo += sorted(r.extras)
                continue
            pin = r.name + (f"[{','.join(sorted(r.extras))}]" if r.extras else "") + str(r.specifier)
            if pin not in out:
                out.append(pin)
    return sorted(out)


def wheel_requires(wheel: Path) -> tuple[list[str], list[str]]:
    """(Requires-Dist, Provides-Extra) from a wheel's own metadata."""
    with zipfile.ZipFile(wheel) as z:
        info = next(n.split("/")[0] for n in z.namelist() if n.endswith(".dist-info/METADATA"))
    dist = importlib.metadata.PathDistribution(zipfile.Path(wheel, info + "/"))
    return dist.requires or [], dist.metadata.get_all("Provides-Extra") or []


def _skipped(name: str) -> bool:
    return any(fnmatch.fnmatch(name, pattern) for pattern in SKIPPED)


def _source_files(root: Path) -> list[Path]:
    """Relative paths of what the wheel is built from; a symlink is listed, not followed."""
    out = [Path("pyproject.toml")]
    for top in SOURCE_DIRS:
        for d, dirs, files in os.walk(root / top):
            dirs[:] = sorted(x for x in dirs if not _skipped(x))
            rel = Path(d).relative_to(root)
            out += [rel / x for x in dirs if (Path(d) / x).is_symlink()]
            out += [rel / f for f in sorted(files) if not _skipped(f)]
    return out


def _checkout() -> Path:
    root = resources.checkout_root()
    if root is None:
        raise PackagingError(f"{PROJECT} is installed from a wheel here: the host wheelhouse is "
                             "built from a bpfleet checkout (run it from one)")
    return root


def build_wheel(out: Path) -> Path:
    """bpfleet's own wheel, built from a clean copy of the checkout (pip builds in the tree it is
    given, and the checkout stays untouched). -> the .whl in `out`."""
    root = _checkout()
    with tempfile.TemporaryDirectory(prefix="bpfleet-wheel-") as tmp:
        src = Path(tmp)
        for rel in _source_files(root):
            (src / rel).parent.mkdir(parents=True, exist_ok=True)
            if (root / rel).is_symlink():
                os.symlink(os.readlink(root / rel), src / rel)
            else:
                shutil.copy2(root / rel, src / rel)
        _pip_wheel(["--no-deps", "--no-build-isolation", str(src)], out)
    wheels = sorted(out.glob(f"{PROJECT}-*.whl"))
    if len(wheels) != 1:
        raise PackagingError(f"pip wheel left {len(wheels)} {PROJECT} wheels in {out}")
    return wheels[0]


def _pip_wheel(args: list[str], out: Path) -> None:
    cmd = [sys.executable, "-m", "pip", "wheel", "--quiet", "--disable-pip-version-check",
           "--wheel-dir", str(out), *args]
    # A fixed SOURCE_DATE_EPOCH: the same source gives the same wheel (zip times), so a rebuilt
    # wheelhouse has the digest hosts already record and they don't reinstall.
    r = subprocess.run(cmd, capture_output=True, text=True,
                       env={**os.environ, "SOURCE_DATE_EPOCH": "315532800"})
    if r.returncode != 0:
        raise PackagingError(f"{' '.join(cmd)} failed (exit {r.returncode}):\n"
                             + "\n".join(r.stderr.strip().splitlines()[-15:]))


def wheelhouse(cache: Path, otlp: bool = False, signing: bool = False, say=lambda m: None) -> Wheelhouse:
    """The wheels of bpfleet (from this checkout) and what bpfleet[exporter] (+ signing, otlp)
    requires, for this Python; built with `pip wheel` the first time, then taken from the cache."""
    root = _checkout()
    python = "%d.%d" % sys.version_info[:2]
    extras = host_extras(otlp, signing)
    h = hashlib.sha256(f"{python}\n{extras}\n".encode())
    for rel in _source_files(root):
        p = root / rel
        h.update(f"{rel}\0".encode() + (os.readlink(p).encode() if p.is_symlink() else p.read_bytes()) + b"\0")
    where = cache / "wheelhouse" / h.hexdigest()[:20]
    archive, digest_file = where / "wheelhouse.tar", where / "wheelhouse.sha256"
    if archive.is_file() and digest_file.is_file():
        return Wheelhouse(str(archive), digest_file.read_text().strip(), python)
    say(f"building the host wheelhouse (pip wheel) into {where}")
    with tempfile.TemporaryDirectory(prefix="bpfleet-wheelhouse-") as tmp:
        wheels = Path(tmp)
        requires, provided = wheel_requires(build_wheel(wheels))
        reqs = requirements(requires, extras, provided)
        if reqs:
            _pip_wheel(reqs, wheels)
        data = _tar([(p.name, p) for p in sorted(wheels.glob("*.whl"))])
    _write_atomic(archive, data)
    digest = hashlib.sha256(data).hexdigest()
    _write_atomic(digest_file, digest.encode() + b"\n")
    return Wheelhouse(str(archive), digest, python)
