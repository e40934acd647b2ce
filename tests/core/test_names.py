"""core.names: one definition of a name and a version, and the Ansible module's copy agrees."""
from __future__ import annotations

import ast
from pathlib import Path

import pytest

from core import names

ROOT = Path(__file__).resolve().parent.parent.parent
ARTIFACT_MODULE = ROOT / "playbooks" / "library" / "bpfleet_artifact.py"
CODE_DIRS = ("core", "exporter", "orchestrator", "bpfleet")


def module_patterns(path: Path) -> dict[str, str]:
    """NAME = re.compile(r"...") at a module's top level -> {NAME: pattern}."""
    out = {}
    for node in ast.parse(path.read_text()).body:
        if (isinstance(node, ast.Assign) and isinstance(node.value, ast.Call)
                and ast.unparse(node.value.func) == "re.compile"):
            for t in node.targets:
                if isinstance(t, ast.Name):
                    out[t.id] = ast.literal_eval(node.value.args[0])
    return out


def test_the_ansible_modules_copy_is_the_same_pattern():
    # playbooks/library runs on hosts without this package, so it keeps a copy.
    pats = module_patterns(ARTIFACT_MODULE)
    assert pats["VERSION_RE"] == names.SEMVER_RE.pattern
    assert pats["NAME_RE"] == names.NAME_RE.pattern


def test_no_other_module_defines_a_name_or_semver_pattern():
    """Every name/version check goes through core.names (grep for the pattern text)."""
    # the name pattern, a semver core without leading zeros, a version with a pre-release part
    needles = (names.NAME_RE.pattern.strip("^$"), r"(0|[1-9]\d*)", r"\d+\.\d+\.\d+(-")
    offenders = []
    for d in CODE_DIRS:
        for f in (ROOT / d).rglob("*.py"):
            if f != ROOT / "core" / "names.py":
                text = f.read_text()
                offenders += [f"{f.relative_to(ROOT)}: {n}" for n in needles if n in text]
    assert offenders == [], offenders


@pytest.mark.parametrize("v, semver, version", [
    ("1.0.0", True, True), ("0.10.3", True, True), ("2.0.0-rc.1", True, True),
    ("latest", False, True), ("1.0", False, False), ("v1.0.0", False, False), ("01.0.0", False, False),
    ("1.0.0+build.5", False, False), ("LATEST", False, False), ("1.0.0\n", False, False),
    (1, False, False), (None, False, False),
])
def test_versions(v, semver, version):
    assert names.is_semver(v) is semver
    assert names.is_version(v) is version


@pytest.mark.parametrize("v, ok", [
    ("syscalls", True), ("tcp_v4", True), ("a", True), ("Sys-Calls", False), ("9lives", False),
    ("..", False), ("", False), ("syscalls\n", False), ("_x", False), (3, False),
])
def test_names(v, ok):
    assert names.is_name(v) is ok


def test_digest():
    assert names.is_digest("ab" * 32)
    assert not names.is_digest("AB" * 32) and not names.is_digest("ab" * 32 + "\n")
    assert not names.is_digest("sha256:" + "a" * 57) and not names.is_digest(None)


def test_version_key_orders_prereleases_before_their_release():
    ordered = ["garbage", "0.9.0", "1.0.0-alpha", "1.0.0-alpha.1", "1.0.0-beta.2", "1.0.0-beta.11",
               "1.0.0", "1.2.0", "10.0.0"]
    assert sorted(reversed(ordered), key=names.version_key) == ordered

