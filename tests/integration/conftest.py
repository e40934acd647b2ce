"""Fixtures for the real-kernel integration tests (see harness.py)."""
from __future__ import annotations

import shutil
from pathlib import Path

import pytest

from harness import BUILTINS, PROGRAMS_DIR, REPORT, TRACKER, Exporter, build
from needs import skip_folder_unless_able


def pytest_collection_modifyitems(config, items):
    skip_folder_unless_able(items, Path(__file__).parent, "integration tests", ("bpftool", "clang"))


def pytest_terminal_summary(terminalreporter):
    if REPORT:
        terminalreporter.section("bpfleet integration")
        for line in REPORT:
            terminalreporter.write_line(line)


@pytest.fixture(scope="session", autouse=True)
def bpf_session():
    """Snapshot the kernel's BPF programs/maps before anything of ours loads; afterwards,
    remove any pin root of ours that a crashed exporter may have left (tests assert on it)."""
    TRACKER.start()
    yield TRACKER
    for root in Path("/sys/fs/bpf").glob(f"{TRACKER.pin_prefix}*"):
        shutil.rmtree(root, ignore_errors=True)


@pytest.fixture(scope="session")
def registry(tmp_path_factory) -> Path:
    """Every built-in program, built by `bpfleet programs build` into a fresh registry."""
    reg = tmp_path_factory.mktemp("registry")
    results = build(reg, *(PROGRAMS_DIR / n for n in BUILTINS))
    assert [r["status"] for r in results] == ["built"] * len(BUILTINS), results
    return reg


class ExporterFactory:
    def __init__(self, tmp: Path, registry: Path):
        self.tmp, self.registry, self.started = tmp, registry, []

    def __call__(self, programs: dict, registry: Path | None = None, start: bool = True,
                 **kw) -> Exporter:
        e = Exporter(self.tmp / f"exporter{len(self.started)}", registry or self.registry, programs, **kw)
        self.started.append(e)
        return e.start() if start else e

    def stop_all(self) -> None:
        errors = []
        for e in self.started:
            try:
                e.stop()
            except AssertionError as err:
                errors.append(str(err))
                e.kill()  # make sure nothing of it stays behind
        if errors:
            pytest.fail("\n\n".join(errors), pytrace=False)


@pytest.fixture
def exporters(tmp_path, registry):
    f = ExporterFactory(tmp_path, registry)
    yield f
    f.stop_all()


@pytest.fixture(scope="module")
def module_exporters(tmp_path_factory, registry):
    f = ExporterFactory(tmp_path_factory.mktemp("exporters"), registry)
    yield f
    f.stop_all()
