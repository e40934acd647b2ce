"""orchestrator/packaging.py's wheelhouse: what a host needs is the `exporter` extra (plus
signing, otlp) read from bpfleet's metadata, never a list of its own. Building the wheel is
tests/setup/test_wheel_and_extras.py; the whole `fleet install` is tests/e2e."""
from __future__ import annotations

import importlib.metadata
import io
import tarfile
import tomllib
import zipfile
from pathlib import Path

import pytest

from core import resources
from orchestrator import packaging

ROOT = Path(__file__).resolve().parents[2]
EXTRAS = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]["optional-dependencies"]


def installed() -> tuple[list[str], list[str]]:
    dist = importlib.metadata.distribution("bpfleet")
    return dist.requires or [], dist.metadata.get_all("Provides-Extra") or []


@pytest.mark.parametrize("otlp, signing", [(False, False), (True, False), (False, True), (True, True)])
def test_a_hosts_requirements_are_the_extras_of_pyproject(otlp, signing):
    want = EXTRAS["exporter"] + (EXTRAS["otlp"] if otlp else []) + (EXTRAS["signing"] if signing else [])
    requires, provided = installed()
    got = packaging.requirements(requires, packaging.host_extras(otlp, signing), provided)
    assert got == sorted(want)            # Python 3.11+: the base (tomli < 3.11) adds nothing
    if otlp and signing:
        assert "cryptography>=38" in got and "opentelemetry-sdk>=1.25" in got


def test_the_control_machine_gets_the_control_extra_and_what_it_names():
    requires, provided = installed()
    got = packaging.requirements(requires, ("control",), provided)
    own = [r for r in EXTRAS["control"] if not r.startswith("bpfleet[")]
    assert got == sorted(own + EXTRAS["exporter"] + EXTRAS["signing"])


REQUIRES = [
    'tomli>=2.0; python_version < "3.0"',
    'a>=1; python_version >= "3.0"',
    'b; extra == "exporter"',
    'c[y,x]>=2; extra == "control"',
    'bpfleet[exporter]; extra == "control"',
    'd; python_version < "3.0" and extra == "exporter"',
    'e; extra == "otlp"',
]


def test_markers_extras_and_self_references():
    provided = ["exporter", "control", "otlp"]
    assert packaging.requirements(REQUIRES, ("exporter",), provided) == ["a>=1", "b"]
    assert packaging.requirements(REQUIRES, ("control",), provided) == ["a>=1", "b", "c[x,y]>=2"]
    assert packaging.requirements(REQUIRES, ("exporter", "otlp"), provided) == ["a>=1", "b", "e"]


def test_an_extra_the_project_lacks_is_an_error():
    with pytest.raises(packaging.PackagingError, match="declares no extra exportr"):
        packaging.requirements(REQUIRES, ("exportr",), ["exporter"])


def test_requirements_come_from_the_wheels_own_metadata(tmp_path):
    wheel = tmp_path / "bpfleet-9.9.9-py3-none-any.whl"
    with zipfile.ZipFile(wheel, "w") as z:
        z.writestr("bpfleet-9.9.9.dist-info/METADATA",
                   "Metadata-Version: 2.1\nName: bpfleet\nVersion: 9.9.9\nProvides-Extra: exporter\n"
                   "Requires-Dist: zz>=3 ; extra == 'exporter'\n")
    requires, provided = packaging.wheel_requires(wheel)
    assert (requires, provided) == (["zz>=3 ; extra == 'exporter'"], ["exporter"])
    assert packaging.requirements(requires, ("exporter",), provided) == ["zz>=3"]


def test_the_wheel_is_built_from_the_checkout_with_its_data_links():
    files = packaging._source_files(ROOT)
    assert Path("bpfleet_data/programs") in files and Path("bpfleet_data/playbooks") in files
    assert Path("programs/tcp/manifest.toml") in files and Path("playbooks/install.yml") in files
    assert not [f for f in files if f.parts[0] == "bpfleet_data" and len(f.parts) > 2]  # links, not followed
    assert not [f for f in files if "__pycache__" in f.parts or f.suffix in (".pyc", ".o")]


def test_an_installed_bpfleet_cannot_build_a_wheelhouse(monkeypatch, tmp_path):
    monkeypatch.setattr(resources, "checkout_root", lambda: None)
    with pytest.raises(packaging.PackagingError, match="built from a bpfleet checkout"):
        packaging.wheelhouse(tmp_path)
    assert not (tmp_path / "wheelhouse").exists()


def test_archives_hold_long_wheel_names_and_stay_deterministic(tmp_path):
    name = "charset_normalizer-3.5.3-cp311-cp311-manylinux1_x86_64.manylinux_2_28_x86_64.manylinux_2_5_x86_64.whl"
    (tmp_path / name).write_bytes(b"wheel")
    one = packaging._tar([(name, tmp_path / name)])
    (tmp_path / name).touch()                    # a new mtime changes nothing
    assert packaging._tar([(name, tmp_path / name)]) == one
    with tarfile.open(fileobj=io.BytesIO(one)) as tar:
        assert tar.getnames() == [name] and tar.extractfile(name).read() == b"wheel"
