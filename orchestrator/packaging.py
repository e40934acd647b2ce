"""What the control machine ships to hosts: artifact archives and the exporter's wheelhouse.

Both are built once and cached by content: an artifact archive by name, version, digest (and
signature), the wheelhouse by the source of bpfleet, the host requirements and the Python
version. Archives are deterministic tars (sorted names, no timestamps or owners), so a host
that has one already is recognised by its checksum.
"""
from __future__ import annotations

import base64
import hashlib
import io
import os
import shutil
import subprocess
import sys
import tarfile
import tempfile
from dataclasses import dataclass
from pathlib import Path

from core import registry as reg

ROOT = Path(__file__).resolve().parent.parent
PACKAGES = ("core", "exporter", "orchestrator", "bpfleet")
# What `bpfleet exporter` and `bpfleet programs verify` import on a host (bcc is optional: the
# decoders fall back without it). cryptography only where signatures are checked (trusted_keys:
# `signing=True`; 4.7 of its 5.5 MB), OpenTelemetry only for an [otlp] table (`otlp=True`).
HOST_REQUIREMENTS = ("tomli>=2.0", "prometheus-client>=0.20")
SIGNING_REQUIREMENTS = ("cryptography>=38",)
OTLP_REQUIREMENTS = ("opentelemetry-sdk>=1.25", "opentelemetry-exporter-otlp-proto-grpc>=1.25",
                     "opentelemetry-exporter-otlp-proto-http>=1.25", "opentelemetry-proto>=1.25")


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
    with tarfile.open(fileobj=buf, mode="w", format=tarfile.USTAR_FORMAT) as tar:
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


def _source_files() -> list[Path]:
    files = [ROOT / "pyproject.toml"]
    for pkg in PACKAGES:
        files += sorted(p for p in (ROOT / pkg).rglob("*") if p.is_file() and p.suffix != ".pyc"
                        and "__pycache__" not in p.parts)
    return files


def wheelhouse(cache: Path, otlp: bool = False, signing: bool = False, say=lambda m: None) -> Wheelhouse:
    """The wheels of bpfleet (from this checkout) and its host runtime requirements, for this
    Python; built with `pip wheel` the first time, then taken from the cache."""
    if not (ROOT / "pyproject.toml").is_file():
        raise PackagingError(f"{ROOT} has no pyproject.toml: the wheelhouse is built from a "
                             "bpfleet checkout")
    python = "%d.%d" % sys.version_info[:2]
    reqs = HOST_REQUIREMENTS + (SIGNING_REQUIREMENTS if signing else ()) + (OTLP_REQUIREMENTS if otlp else ())
    h = hashlib.sha256(f"{python}\n{reqs}\n".encode())
    for f in _source_files():
        h.update(f"{f.relative_to(ROOT)}\0".encode() + f.read_bytes() + b"\0")
    where = cache / "wheelhouse" / h.hexdigest()[:20]
    archive, digest_file = where / "wheelhouse.tar", where / "wheelhouse.sha256"
    if archive.is_file() and digest_file.is_file():
        return Wheelhouse(str(archive), digest_file.read_text().strip(), python)
    say(f"building the host wheelhouse (pip wheel) into {where}")
    with tempfile.TemporaryDirectory(prefix="bpfleet-wheelhouse-") as tmp:
        src, wheels = Path(tmp, "src"), Path(tmp, "wheels")
        for f in _source_files():    # a clean copy: pip builds in the tree it is given
            (src / f.relative_to(ROOT)).parent.mkdir(parents=True, exist_ok=True)
            shutil.copy2(f, src / f.relative_to(ROOT))
        pip = [sys.executable, "-m", "pip", "wheel", "--quiet", "--disable-pip-version-check",
               "--wheel-dir", str(wheels)]
        for cmd in (pip + ["--no-deps", "--no-build-isolation", str(src)], pip + list(reqs)):
            r = subprocess.run(cmd, capture_output=True, text=True)
            if r.returncode != 0:
                raise PackagingError(f"{' '.join(cmd)} failed (exit {r.returncode}):\n"
                                     + "\n".join(r.stderr.strip().splitlines()[-15:]))
        data = _tar([(p.name, p) for p in sorted(wheels.glob("*.whl"))])
    _write_atomic(archive, data)
    digest = hashlib.sha256(data).hexdigest()
    _write_atomic(digest_file, digest.encode() + b"\n")
    return Wheelhouse(str(archive), digest, python)
