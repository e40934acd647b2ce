"""Fixtures for the lab tests. The real tests run `bpfleet lab` as a subprocess against a lab of
their own (prefix bpfltest, its own subnet, ports and state dir), so a developer's running lab
is left alone; the VM image cache is the shared one, so an image built once serves both."""
from __future__ import annotations

import os
import subprocess
import sys

import pytest

from labkit import REPORT, TEST_LAB


def pytest_configure(config):
    config.addinivalue_line("markers", "vm: boots QEMU VMs of the lab (minutes on a fresh machine)")


def pytest_terminal_summary(terminalreporter):
    if REPORT:
        terminalreporter.section("bpfleet lab")
        for line in REPORT:
            terminalreporter.write_line(line)


@pytest.fixture(scope="session")
def lab_cli():
    """Run `bpfleet lab ...` on the test lab; returns the CompletedProcess."""
    if os.geteuid() != 0:
        pytest.skip("the lab needs root (network namespaces, mounts, VMs)")
    env = {**os.environ, **TEST_LAB}

    def cli(*args: str, check: bool = True, timeout: float = 900) -> subprocess.CompletedProcess:
        p = subprocess.run([sys.executable, "-m", "bpfleet.cli", "lab", *args], env=env,
                           capture_output=True, text=True, timeout=timeout)
        if check and p.returncode != 0:
            pytest.fail(f"bpfleet lab {' '.join(args)}: exit {p.returncode}\n{p.stdout}\n{p.stderr}")
        return p
    return cli
