"""Fixtures for the dashboard tests.

The pure generator tests need nothing but tests/core/synth_btf.py. The staleness tests build
the built-in programs (clang, libbpf). The Prometheus tests run a real exporter — here through
tests/integration/harness.py (root, clang, bpftool), in a lab VM through
tests/mitigations/vmkit.py — and a real `prometheus` server; dashkit.py evaluates the queries.
"""
from __future__ import annotations

import shutil
import sys
from pathlib import Path

import pytest

TESTS = Path(__file__).resolve().parents[1]
for d in (TESTS / "core", TESTS / "mitigations"):      # synth_btf.py; vmkit.py
    if str(d) not in sys.path:
        sys.path.insert(0, str(d))


def pytest_configure(config):
    config.addinivalue_line("markers", "vm: boots QEMU VMs of the lab (minutes on a fresh machine)")


@pytest.fixture
def needs_build():
    if shutil.which("clang") is None or shutil.which("llvm-strip") is None:
        pytest.skip("building programs needs clang and llvm-strip")
