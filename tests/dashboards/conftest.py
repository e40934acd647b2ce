"""Fixtures for the dashboard tests.

The pure generator tests need nothing but tests/bpfleet/synth_btf.py. The staleness tests build
the built-in programs (clang, libbpf). The Prometheus test runs a real exporter through
tests/integration/harness.py (root, clang, bpftool) and a real `prometheus` server.
"""
from __future__ import annotations

import shutil
import sys
from pathlib import Path

import pytest

TESTS = Path(__file__).resolve().parents[1]
if str(TESTS / "bpfleet") not in sys.path:       # synth_btf.py
    sys.path.insert(0, str(TESTS / "bpfleet"))


@pytest.fixture
def needs_build():
    if shutil.which("clang") is None or shutil.which("llvm-strip") is None:
        pytest.skip("building programs needs clang and llvm-strip")
