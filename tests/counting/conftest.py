"""The counting tests load BPF programs into this kernel: root and clang, or skipped."""
from __future__ import annotations

from pathlib import Path

from needs import skip_folder_unless_able


def pytest_collection_modifyitems(config, items):
    skip_folder_unless_able(items, Path(__file__).parent, "the counting tests", ("clang",))


def pytest_terminal_summary(terminalreporter):
    from racekit import REPORT   # what the tests measured
    if REPORT:
        terminalreporter.section("bpfleet counting")
        for line in REPORT:
            terminalreporter.write_line(line)
