"""The content-addressed program registry: `<registry>/<name>/<version>/`.

Each version directory holds the object, the manifest, the sources it was built from and
`index.json` with the sha256 of every file and the artifact digest (sha256 over those lines).
A released version is immutable: building it again with different content is an error.
"""
from __future__ import annotations

import hashlib
import json
import os
import shutil
import tempfile
from dataclasses import dataclass
from pathlib import Path

from core.names import SEMVER_RE, is_name, version_key
from core.problems import Problem, ProblemsError

INDEX = "index.json"
SIGNATURE = "signature.ed25519"     # see core/signing.py; outside the digest it signs
NOT_CONTENT = {INDEX, SIGNATURE}


@dataclass(frozen=True)
class Artifact:
    name: str
    version: str
    digest: str
    dir: Path

    @property
    def object_path(self) -> Path:
        return self.dir / f"{self.name}.bpf.o"

    @property
    def manifest_path(self) -> Path:
        return self.dir / "manifest.toml"

    @property
    def ref(self) -> str:
        return f"{self.name}@{self.version}"


def sha256_file(path: Path) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for chunk in iter(lambda: f.read(1 << 16), b""):
            h.update(chunk)
    return h.hexdigest()


def digest_of(files: dict[str, str]) -> str:
    """The artifact digest: sha256 over "<sha256>  <file>" lines in file order (sha256sum style)."""
    text = "".join(f"{files[n]}  {n}\n" for n in sorted(files))
    return hashlib.sha256(text.encode()).hexdigest()


def file_digests(directory: Path) -> dict[str, str]:
    return {p.name: sha256_file(p) for p in sorted(directory.iterdir())
            if p.is_file() and p.name not in NOT_CONTENT}


def publish(registry: Path, name: str, version: str, staged: Path,
            manifest_path: str) -> tuple[Artifact, bool]:
    """Move a staged build into the registry. -> (artifact, True if new, False if identical).

    Raises ProblemsError if that version exists with different content."""
    files = file_digests(staged)
    digest = digest_of(files)
    dest = registry / name / version
    if dest.exists():
        existing = read_index(dest)
        if existing.get("digest") != digest:
            changed = sorted(n for n in set(files) | set(existing.get("files", {}))
                             if files.get(n) != existing.get("files", {}).get(n))
            raise ProblemsError([Problem(manifest_path, "version", (
                f"{name}@{version} is already released with digest {existing.get('digest', '?')[:12]}; "
                f"this build differs in {', '.join(changed)}. A released version is immutable: "
                "bump the version in manifest.toml."))])
        return Artifact(name, version, digest, dest), False
    with open(staged / INDEX, "w") as f:
        json.dump({"name": name, "version": version, "digest": digest, "files": files}, f, indent=2)
    dest.parent.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(prefix=f".{version}.", dir=dest.parent))
    shutil.copytree(staged, tmp, dirs_exist_ok=True)
    os.rename(tmp, dest)
    write_registry_index(registry)
    return Artifact(name, version, digest, dest), True


def read_index(version_dir: Path) -> dict:
    try:
        with open(version_dir / INDEX) as f:
            return json.load(f)
    except (OSError, ValueError):
        return {}


def write_registry_index(registry: Path) -> None:
    """`<registry>/index.json`: every name → version → digest, for humans and the orchestrator."""
    index = {}
    for name_dir in sorted(p for p in registry.iterdir() if p.is_dir() and not p.name.startswith(".")):
        versions = {v.name: read_index(v).get("digest") for v in name_dir.iterdir()
                    if v.is_dir() and not v.name.startswith(".")}
        index[name_dir.name] = dict(sorted(versions.items(), key=lambda kv: version_key(kv[0])))
    tmp = registry / f".{INDEX}.tmp"
    tmp.write_text(json.dumps(index, indent=2) + "\n")
    os.replace(tmp, registry / INDEX)


def versions(registry: Path, name: str) -> list[str]:
    d = registry / name
    if not d.is_dir():
        return []
    # dot directories are publishes in progress (or interrupted): never a version
    return sorted((v.name for v in d.iterdir()
                   if not v.name.startswith(".") and SEMVER_RE.match(v.name) and (v / INDEX).is_file()),
                  key=version_key)


def names(registry: Path) -> list[str]:
    if not registry.is_dir():
        return []
    return sorted(p.name for p in registry.iterdir() if p.is_dir() and versions(registry, p.name))


def resolve(registry: Path, name: str, version: str = "latest",
            trusted_keys: list[Path] | None = None) -> Artifact:
    """Find `name@version` ("latest" = highest) and verify its files against its index and,
    with `trusted_keys`, its signature (unsigned or wrongly signed artifacts are refused)."""
    where = f"{registry}/{name}"
    if not is_name(name):
        raise ProblemsError([Problem(str(registry), "", f"{name!r} is not a program name")])
    available = versions(registry, name)
    if not available:
        raise ProblemsError([Problem(where, "", f"program {name!r} is not in the registry "
                                     f"(have: {', '.join(names(registry)) or 'nothing'}); "
                                     "run `bpfleet programs build`")])
    if version == "latest":
        version = available[-1]
    if version not in available:
        raise ProblemsError([Problem(where, "", f"version {version!r} of {name} is not in the "
                                     f"registry (have: {', '.join(available)})")])
    d = registry / name / version
    index = read_index(d)
    files = file_digests(d)
    if files != index.get("files") or digest_of(files) != index.get("digest"):
        bad = sorted(n for n in set(files) | set(index.get("files", {}))
                     if files.get(n) != index.get("files", {}).get(n))
        raise ProblemsError([Problem(str(d), INDEX, f"artifact does not match its digests "
                                     f"(changed: {', '.join(bad) or 'index'}); refusing to use it")])
    if trusted_keys:
        from core import signing   # cryptography only for hosts that check signatures
        try:
            signing.verify(d / SIGNATURE, index["digest"], trusted_keys)
        except signing.SignatureError as e:
            raise ProblemsError([Problem(str(d), SIGNATURE, str(e))])
    return Artifact(name, version, index["digest"], d)


def sign(artifact: Artifact, private_path: Path) -> Path:
    """Sign a released artifact's digest; -> the signature file (outside the digest it covers)."""
    from core import signing   # cryptography only when signing (the [signing] extra)
    return signing.sign(artifact.dir / SIGNATURE, artifact.digest, private_path)
