"""Fixtures for the mitigation tests: a registry with the built-in mitigations, exporters."""
from __future__ import annotations

import os
import shutil
from pathlib import Path

import pytest

from harness import MITIGATIONS, PROGRAMS_DIR, TRACKER, Exporter, build


def pytest_configure(config):
    config.addinivalue_line("markers", "live: loads real BPF programs (root, clang, bpftool)")
    config.addinivalue_line("markers", "vm: needs a lab VM (BPF-LSM); fails, never skips, without one")
    config.addinivalue_line("markers", "lab: a lab fleet (netns hosts, fleet install, Ansible)")


def pytest_collection_modifyitems(config, items):
    reason = None
    if os.geteuid() != 0:
        reason = "mitigation tests load BPF programs: run as root"
    elif shutil.which("bpftool") is None or shutil.which("clang") is None:
        reason = "mitigation tests need bpftool and clang"
    here = Path(__file__).parent
    for item in items:
        if reason and here in Path(str(item.fspath)).parents and "live" in item.keywords:
            item.add_marker(pytest.mark.skip(reason=reason))


@pytest.fixture(scope="session", autouse=True)
def bpf_session():
    TRACKER.start()
    yield TRACKER
    for root in Path("/sys/fs/bpf").glob(f"{TRACKER.pin_prefix}*"):
        shutil.rmtree(root, ignore_errors=True)


@pytest.fixture(scope="session")
def mit_registry(tmp_path_factory) -> Path:
    """Every built-in mitigation, built by `bpfleet programs build` into a fresh registry."""
    reg = tmp_path_factory.mktemp("registry")
    results = build(reg, *(PROGRAMS_DIR / n for n in MITIGATIONS))
    assert [r["status"] for r in results] == ["built"] * len(MITIGATIONS), results
    return reg


@pytest.fixture
def start_exporter(tmp_path, mit_registry):
    """start_exporter(mitigations_toml, registry=None) -> a started Exporter; stopped after."""
    started = []

    def start(extra_config: str, registry: Path | None = None, start: bool = True) -> Exporter:
        e = Exporter(tmp_path / f"exporter{len(started)}", registry or mit_registry, {},
                     extra_config=extra_config)
        started.append(e)
        return e.start() if start else e
    yield start
    errors = []
    for e in started:
        try:
            e.stop()
        except AssertionError as err:
            errors.append(str(err))
            e.kill()
    if errors:
        pytest.fail("\n\n".join(errors), pytrace=False)
