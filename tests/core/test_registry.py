"""core.registry: publish (built / unchanged / immutable), resolve (latest by semver, errors
that list what exists, digest verification) and the registry-wide index.json."""
from __future__ import annotations

import hashlib
import itertools
import json
from pathlib import Path

import pytest

from core import registry as reg
from core.problems import ProblemsError

MANIFEST_PATH = "programs/demo/manifest.toml"
_stages = itertools.count()


def stage(tmp_path: Path, name: str = "demo", version: str = "1.0.0", obj: bytes = b"\x7fELF object",
          extra: dict | None = None) -> Path:
    """A staged build directory as build_dir makes it: object, manifest, sources."""
    d = tmp_path / f"stage-{next(_stages)}"
    d.mkdir()
    (d / f"{name}.bpf.o").write_bytes(obj)
    (d / "manifest.toml").write_text(f'name = "{name}"\nversion = "{version}"\n')
    (d / f"{name}.bpf.c").write_text("// source\n")
    for fname, text in (extra or {}).items():
        (d / fname).write_text(text)
    return d


def publish(tmp_path, registry, name="demo", version="1.0.0", **kw):
    return reg.publish(registry, name, version, stage(tmp_path, name, version, **kw), MANIFEST_PATH)


@pytest.fixture
def registry(tmp_path) -> Path:
    r = tmp_path / "registry"
    r.mkdir()
    return r


def sha(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


# ---------------------------------------------------------------- digests

def test_digest_of_is_sha256sum_style_over_sorted_names():
    files = {"b.txt": "22" * 32, "a.txt": "11" * 32}
    text = f"{'11' * 32}  a.txt\n{'22' * 32}  b.txt\n"
    assert reg.digest_of(files) == sha(text.encode())


def test_file_digests_skip_the_index_and_directories(tmp_path):
    (tmp_path / "x").write_bytes(b"x")
    (tmp_path / reg.INDEX).write_text("{}")
    (tmp_path / "sub").mkdir()
    assert reg.file_digests(tmp_path) == {"x": sha(b"x")}


# ---------------------------------------------------------------- publish

def test_publish_new_version(tmp_path, registry):
    artifact, new = publish(tmp_path, registry)
    assert new is True
    d = registry / "demo" / "1.0.0"
    assert artifact == reg.Artifact("demo", "1.0.0", artifact.digest, d)
    assert artifact.ref == "demo@1.0.0"
    assert artifact.object_path == d / "demo.bpf.o" and artifact.object_path.read_bytes() == b"\x7fELF object"
    assert artifact.manifest_path == d / "manifest.toml"
    index = json.loads((d / reg.INDEX).read_text())
    assert index == {
        "name": "demo", "version": "1.0.0", "digest": artifact.digest,
        "files": {"demo.bpf.c": sha(b"// source\n"), "demo.bpf.o": sha(b"\x7fELF object"),
                  "manifest.toml": sha(b'name = "demo"\nversion = "1.0.0"\n')},
    }
    assert artifact.digest == reg.digest_of(index["files"])
    # no temporary directories left behind
    assert sorted(p.name for p in (registry / "demo").iterdir()) == ["1.0.0"]


def test_publish_same_content_is_unchanged(tmp_path, registry):
    first, new1 = publish(tmp_path, registry)
    second, new2 = publish(tmp_path, registry)
    assert (new1, new2) == (True, False)
    assert second == first


def test_publish_different_content_for_a_released_version_is_refused(tmp_path, registry):
    first, _ = publish(tmp_path, registry)
    with pytest.raises(ProblemsError) as e:
        publish(tmp_path, registry, obj=b"\x7fELF changed")
    (p,) = e.value.problems
    assert (p.file, p.field) == (MANIFEST_PATH, "version")
    assert "demo@1.0.0 is already released" in p.message
    assert first.digest[:12] in p.message
    assert "differs in demo.bpf.o." in p.message
    assert "immutable" in p.message and "bump the version" in p.message
    # the released artifact is untouched
    assert (registry / "demo" / "1.0.0" / "demo.bpf.o").read_bytes() == b"\x7fELF object"
    assert reg.resolve(registry, "demo").digest == first.digest


def test_publish_refusal_names_added_files(tmp_path, registry):
    publish(tmp_path, registry)
    with pytest.raises(ProblemsError) as e:
        publish(tmp_path, registry, obj=b"other", extra={"demo.h": "struct k {};\n"})
    assert "differs in demo.bpf.o, demo.h." in e.value.problems[0].message


def test_publish_over_a_version_without_index_is_refused(tmp_path, registry):
    (registry / "demo" / "1.0.0").mkdir(parents=True)
    with pytest.raises(ProblemsError) as e:
        publish(tmp_path, registry)
    assert "digest ?" in e.value.problems[0].message


def test_registry_index_lists_every_version_digest(tmp_path, registry):
    a, _ = publish(tmp_path, registry, "demo", "1.10.0")
    b, _ = publish(tmp_path, registry, "demo", "1.9.0", obj=b"9")
    c, _ = publish(tmp_path, registry, "other", "0.1.0", obj=b"o")
    index = json.loads((registry / reg.INDEX).read_text())
    assert index == {"demo": {"1.9.0": b.digest, "1.10.0": a.digest}, "other": {"0.1.0": c.digest}}
    assert list(index["demo"]) == ["1.9.0", "1.10.0"]          # semver order, not text order
    assert not (registry / f".{reg.INDEX}.tmp").exists()


# ---------------------------------------------------------------- versions and ordering

def test_version_key_orders_by_semver():
    ordered = ["0.0.1", "0.9.0", "0.10.0", "1.0.0-alpha", "1.0.0", "1.2.0", "1.9.0", "1.10.0", "2.0.0-rc.1",
               "2.0.0", "10.0.0"]
    assert sorted(reversed(ordered), key=reg.version_key) == ordered


def test_version_key_sorts_non_semver_first():
    assert sorted(["1.0.0", "garbage", "0.0.1"], key=reg.version_key) == ["garbage", "0.0.1", "1.0.0"]


def test_version_key_follows_semver_precedence_for_prereleases():
    # the example list from semver.org §11
    ordered = ["1.0.0-alpha", "1.0.0-alpha.1", "1.0.0-alpha.beta", "1.0.0-beta", "1.0.0-beta.2",
               "1.0.0-beta.11", "1.0.0-rc.1", "1.0.0"]
    assert sorted(reversed(ordered), key=reg.version_key) == ordered


def test_versions_and_names(tmp_path, registry):
    for v in ("1.10.0", "1.9.0", "1.0.0-rc.1"):
        publish(tmp_path, registry, "demo", v, obj=v.encode())
    publish(tmp_path, registry, "alpha", "0.1.0")
    (registry / "empty").mkdir()
    (registry / "demo" / "2.0.0").mkdir()                     # no index.json: not a version
    assert reg.versions(registry, "demo") == ["1.0.0-rc.1", "1.9.0", "1.10.0"]
    assert reg.versions(registry, "nope") == []
    assert reg.names(registry) == ["alpha", "demo"]
    assert reg.names(registry / "missing") == []


def test_interrupted_publish_leftover_is_not_a_version(tmp_path, registry):
    publish(tmp_path, registry, "demo", "1.0.0")
    leftover = registry / "demo" / ".1.1.0.abc123"
    staged = stage(tmp_path, "demo", "1.1.0", obj=b"new")
    (staged / reg.INDEX).write_text(json.dumps({"files": reg.file_digests(staged)}))
    staged.rename(leftover)
    assert reg.versions(registry, "demo") == ["1.0.0"]


# ---------------------------------------------------------------- resolve

@pytest.fixture
def populated(tmp_path, registry):
    out = {}
    for v in ("1.9.0", "1.10.0", "1.2.0", "1.11.0-rc.1"):
        out[v], _ = publish(tmp_path, registry, "demo", v, obj=f"obj {v}".encode())
    publish(tmp_path, registry, "other", "0.1.0")
    return out


def test_resolve_latest_is_highest_semver(registry, populated):
    a = reg.resolve(registry, "demo")
    assert a.version == "1.11.0-rc.1" and a.digest == populated["1.11.0-rc.1"].digest
    assert reg.resolve(registry, "demo", "latest") == a


def test_resolve_latest_prefers_release_over_its_prerelease(tmp_path, registry):
    publish(tmp_path, registry, "demo", "2.0.0", obj=b"r")
    publish(tmp_path, registry, "demo", "2.0.0-rc.1", obj=b"rc")
    assert reg.resolve(registry, "demo").version == "2.0.0"


def test_resolve_latest_is_not_text_order(tmp_path, registry):
    publish(tmp_path, registry, "demo", "1.9.0", obj=b"9")
    publish(tmp_path, registry, "demo", "1.10.0", obj=b"10")
    assert reg.resolve(registry, "demo").version == "1.10.0"


@pytest.mark.parametrize("version", ["1.9.0", "1.10.0", "1.2.0"])
def test_resolve_exact_version(registry, populated, version):
    a = reg.resolve(registry, "demo", version)
    assert a == populated[version]
    assert a.object_path.read_bytes() == f"obj {version}".encode()


def test_resolve_missing_program_lists_the_programs(registry, populated):
    with pytest.raises(ProblemsError) as e:
        reg.resolve(registry, "nope")
    (p,) = e.value.problems
    assert p.file == f"{registry}/nope"
    assert "program 'nope' is not in the registry (have: demo, other)" in p.message
    assert "bpfleet programs build" in p.message


def test_resolve_in_an_empty_registry(registry):
    with pytest.raises(ProblemsError) as e:
        reg.resolve(registry, "demo")
    assert "(have: nothing)" in e.value.problems[0].message


def test_resolve_missing_version_lists_the_versions(registry, populated):
    with pytest.raises(ProblemsError) as e:
        reg.resolve(registry, "demo", "1.3.0")
    (p,) = e.value.problems
    assert p.message == ("version '1.3.0' of demo is not in the registry "
                         "(have: 1.2.0, 1.9.0, 1.10.0, 1.11.0-rc.1)")


@pytest.mark.parametrize("name", ["../etc", "Demo", "demo/1.0.0", "", "1demo"])
def test_resolve_rejects_bad_names(registry, populated, name):
    with pytest.raises(ProblemsError) as e:
        reg.resolve(registry, name)
    assert "is not a program name" in e.value.problems[0].message


@pytest.mark.parametrize("tamper, changed", [
    (lambda d: (d / "demo.bpf.o").write_bytes(b"\x7fELF evil"), "demo.bpf.o"),
    (lambda d: (d / "manifest.toml").write_text('name = "demo"\nversion = "9.9.9"\n'), "manifest.toml"),
    (lambda d: (d / "demo.bpf.c").unlink(), "demo.bpf.c"),
    (lambda d: (d / "extra.so").write_bytes(b"?"), "extra.so"),
], ids=["object changed", "manifest changed", "file removed", "file added"])
def test_resolve_refuses_a_tampered_artifact(registry, populated, tamper, changed):
    d = registry / "demo" / "1.9.0"
    tamper(d)
    with pytest.raises(ProblemsError) as e:
        reg.resolve(registry, "demo", "1.9.0")
    (p,) = e.value.problems
    assert (p.file, p.field) == (str(d), reg.INDEX)
    assert p.message == f"artifact does not match its digests (changed: {changed}); refusing to use it"
    # other versions are unaffected
    assert reg.resolve(registry, "demo", "1.10.0").version == "1.10.0"


def test_resolve_refuses_a_forged_artifact_digest(registry, populated):
    d = registry / "demo" / "1.9.0"
    index = json.loads((d / reg.INDEX).read_text())
    index["digest"] = "0" * 64
    (d / reg.INDEX).write_text(json.dumps(index))
    with pytest.raises(ProblemsError) as e:
        reg.resolve(registry, "demo", "1.9.0")
    assert "(changed: index)" in e.value.problems[0].message


def test_resolve_refuses_an_unreadable_index(registry, populated):
    d = registry / "demo" / "1.9.0"
    (d / reg.INDEX).write_text("{not json")
    with pytest.raises(ProblemsError) as e:
        reg.resolve(registry, "demo", "1.9.0")
    assert "refusing to use it" in e.value.problems[0].message


def test_tampering_latest_is_refused_not_skipped(registry, populated):
    (registry / "demo" / "1.11.0-rc.1" / "demo.bpf.o").write_bytes(b"evil")
    with pytest.raises(ProblemsError):
        reg.resolve(registry, "demo")
