"""The counting tests load BPF programs into this kernel: root and clang, or skipped."""
from __future__ import annotations

import os
import shutil
from pathlib import Path

import pytest


def pytest_collection_modifyitems(config, items):
    reason = None
    if os.geteuid() != 0:
        reason = "the counting tests load BPF programs: run as root"
    elif shutil.which("clang") is None:
        reason = "the counting tests build BPF programs with clang"
    if reason:
        here = Path(__file__).parent
        for item in items:
            if here in Path(str(item.fspath)).parents:
                item.add_marker(pytest.mark.skip(reason=reason))


def pytest_terminal_summary(terminalreporter):
    from racekit import REPORT   # what the tests measured
    if REPORT:
        terminalreporter.section("bpfleet counting")
        for line in REPORT:
            terminalreporter.write_line(line)
