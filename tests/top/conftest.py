"""Fixtures for `bpfleet top` tests. The pure tests need nothing; the live one starts a real
exporter through tests/integration/harness.py (root, clang and bpftool required)."""
from __future__ import annotations

import os
import shutil
import sys
from pathlib import Path

import pytest

INTEGRATION = Path(__file__).resolve().parents[1] / "integration"
if str(INTEGRATION) not in sys.path:
    sys.path.insert(0, str(INTEGRATION))


def _live_skip_reason() -> str | None:
    if os.geteuid() != 0:
        return "needs root to load BPF programs"
    if shutil.which("bpftool") is None or shutil.which("clang") is None:
        return "needs bpftool and clang"
    return None


@pytest.fixture(scope="session")
def top_registry(tmp_path_factory) -> Path:
    """syscalls and runqlat, built by `bpfleet programs build` into a fresh registry."""
    reason = _live_skip_reason()
    if reason:
        pytest.skip(reason)
    from harness import PROGRAMS_DIR, build
    reg = tmp_path_factory.mktemp("top-registry")
    results = build(reg, PROGRAMS_DIR / "syscalls", PROGRAMS_DIR / "runqlat")
    assert [r["status"] for r in results] == ["built", "built"], results
    return reg


@pytest.fixture(scope="module")
def live_exporter(tmp_path_factory, top_registry):
    """A real `bpfleet exporter` with syscalls and runqlat, on its own port, pin root and
    admin socket; stopped (and checked clean) afterwards."""
    from harness import Exporter
    e = Exporter(tmp_path_factory.mktemp("top-exporter"), top_registry, {"syscalls": {}, "runqlat": {}})
    e.start()
    try:
        e.wait_attached("syscalls", "runqlat")
        yield e
    except BaseException:
        e.kill()
        raise
    else:
        e.stop()
