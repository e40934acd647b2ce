"""Fixtures for the hardening tests. The pure ones (test_budget.py, test_limits.py, the config
and manifest rows of the corpus) need nothing; the live ones start real exporters through
tests/integration/harness.py (root, clang and bpftool required)."""
from __future__ import annotations

import shutil
import sys
from pathlib import Path

import pytest

HERE = Path(__file__).resolve().parent
if str(HERE) not in sys.path:        # hardening_programs.py, sandbox_exec.py
    sys.path.insert(0, str(HERE))

from harness import PROGRAMS_DIR, TRACKER, build, live_skip_reason  # noqa: E402
from hardening_harness import Exporters  # noqa: E402


@pytest.fixture(scope="session")
def hard_session():
    reason = live_skip_reason()
    if reason:
        pytest.skip(reason)
    TRACKER.start()
    yield TRACKER
    for root in Path("/sys/fs/bpf").glob(f"{TRACKER.pin_prefix}*"):
        shutil.rmtree(root, ignore_errors=True)


@pytest.fixture(scope="session")
def hard_registry(tmp_path_factory, hard_session) -> Path:
    """syscalls, exec, runqlat and the hardening test programs (hardening_programs.py), built into a fresh registry."""
    import hardening_programs as hp
    reg = tmp_path_factory.mktemp("hardening-registry")
    src = tmp_path_factory.mktemp("hardening-src")
    dirs = [PROGRAMS_DIR / "syscalls", PROGRAMS_DIR / "exec", PROGRAMS_DIR / "runqlat",
            hp.costly(src), hp.sampled(src), hp.manykeys(src), hp.flood(src), hp.xdpcount(src)]
    results = build(reg, *dirs)
    assert [r["status"] for r in results] == ["built"] * len(dirs), results
    return reg


@pytest.fixture
def hard_exporters(tmp_path, hard_registry):
    f = Exporters(tmp_path, hard_registry)
    yield f
    f.stop_all()
