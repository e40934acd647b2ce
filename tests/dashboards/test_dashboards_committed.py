"""The committed dashboards/ is exactly what `bpfleet dashboards build` generates from the
built-in programs, and `--check` notices when it is not (a metric renamed in a manifest, a
program gone) and names the stale files. Builds the programs: needs clang."""
from __future__ import annotations

import re
import shutil
import subprocess
import sys
from pathlib import Path

import pytest


pytestmark = pytest.mark.usefixtures("needs_build")

ROOT = Path(__file__).resolve().parents[2]
DASHBOARDS_DIR = ROOT / "dashboards"
BPFLEET = [sys.executable, "-m", "bpfleet.cli"]


def bpfleet(*args: str) -> subprocess.CompletedProcess:
    return subprocess.run([*BPFLEET, *args], capture_output=True, text=True, timeout=300, cwd=ROOT)


def tree(d: Path) -> dict[str, bytes]:
    return {str(p.relative_to(d)): p.read_bytes() for p in sorted(d.rglob("*")) if p.is_file()}


@pytest.fixture(scope="module")
def regenerated(tmp_path_factory) -> Path:
    out = tmp_path_factory.mktemp("dashboards")
    r = bpfleet("dashboards", "build", "--out", str(out))
    assert r.returncode == 0, r.stdout + r.stderr
    return out


def test_committed_dashboards_are_byte_identical_to_regenerated(regenerated):
    new, committed = tree(regenerated), tree(DASHBOARDS_DIR)
    stale = sorted(n for n in set(new) | set(committed) if new.get(n) != committed.get(n))
    assert not stale, (f"dashboards/ is stale: {stale}; run `bpfleet dashboards build` and commit "
                       "the result")
    builtins = sorted(d.name for d in (ROOT / "programs").iterdir() if (d / "manifest.toml").is_file())
    assert sorted(n for n in new if n.endswith(".json")) == sorted(
        ["bpfleet-overview.json", *(f"bpfleet-{n}.json" for n in builtins)])


def test_regenerating_twice_gives_the_same_bytes(regenerated, tmp_path):
    r = bpfleet("dashboards", "build", "--out", str(tmp_path))
    assert r.returncode == 0, r.stderr
    assert tree(tmp_path) == tree(regenerated)
    r = bpfleet("dashboards", "build", "--out", str(tmp_path))     # and writes nothing the 2nd time
    assert r.returncode == 0 and ", 0 changed" in r.stdout, r.stdout


def test_check_passes_on_the_committed_dashboards():
    r = bpfleet("dashboards", "build", "--check")
    assert r.returncode == 0, r.stdout + r.stderr
    assert "up to date" in r.stdout


def test_check_names_the_dashboard_of_a_renamed_metric(tmp_path):
    progs = tmp_path / "programs"
    shutil.copytree(ROOT / "programs", progs, ignore=shutil.ignore_patterns("include"))
    man = progs / "biolatency" / "manifest.toml"
    text, n = re.subn(r'name = "bio_bytes_total"', 'name = "bio_transferred_bytes_total"', man.read_text())
    assert n == 1
    man.write_text(text)
    dirs = sorted(str(d) for d in progs.iterdir() if (d / "manifest.toml").is_file())
    r = bpfleet("dashboards", "build", "--check", "--out", str(DASHBOARDS_DIR), *dirs)
    assert r.returncode == 1, r.stdout + r.stderr
    stale = [line for line in r.stderr.splitlines() if line.startswith("stale: ")]
    assert stale == [f"stale: {DASHBOARDS_DIR / 'bpfleet-biolatency.json'}: differs"], r.stderr
    assert "run `bpfleet dashboards build`" in r.stderr


def test_check_and_build_handle_missing_and_orphaned_files(regenerated, tmp_path):
    out = tmp_path / "out"
    shutil.copytree(regenerated, out)
    (out / "bpfleet-gone.json").write_text("{}\n")             # a program that no longer exists
    (out / "bpfleet-tcp.json").unlink()
    (out / "notes.json").write_text("{}\n")                    # not ours: left alone
    r = bpfleet("dashboards", "build", "--check", "--out", str(out))
    assert r.returncode == 1
    assert f"stale: {out / 'bpfleet-tcp.json'}: missing" in r.stderr
    assert f"stale: {out / 'bpfleet-gone.json'}: no longer generated" in r.stderr
    assert "notes.json" not in r.stderr
    r = bpfleet("dashboards", "build", "--out", str(out))
    assert r.returncode == 0, r.stderr
    assert not (out / "bpfleet-gone.json").exists() and (out / "notes.json").exists()
    assert {k: v for k, v in tree(out).items() if k != "notes.json"} == tree(regenerated)
