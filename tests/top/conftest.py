"""Fixtures for `bpfleet top` tests. The pure tests need nothing; the live one starts a real
exporter through tests/integration/harness.py (root, clang and bpftool required)."""
from __future__ import annotations

from pathlib import Path

import pytest

from harness import live_skip_reason


@pytest.fixture(scope="session")
def top_registry(tmp_path_factory) -> Path:
    """syscalls and runqlat, built by `bpfleet programs build` into a fresh registry."""
    reason = live_skip_reason()
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
