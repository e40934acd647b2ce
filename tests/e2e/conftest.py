"""Fixtures for the rollout e2e tests: a lab of their own (4 netns hosts on this kernel and one
Debian 6.1 VM), exporters installed by `bpfleet fleet install`, the sysprobe variants in a
registry. The lab goes down at the end whatever happened, also when setting it up failed."""
from __future__ import annotations

import json
import os
import shutil
import time

import pytest

from e2ekit import CRASHES, PROGRAM, REPORT, bpfleet, build_variants, json_lines


def pytest_configure(config):
    config.addinivalue_line("markers", "e2e: rollouts against a real lab (netns hosts + a VM)")


def pytest_terminal_summary(terminalreporter):
    if REPORT:
        terminalreporter.section("bpfleet rollout e2e")
        for line in REPORT:
            terminalreporter.write_line(line)


def _lab(*args: str, check: bool = True):
    p = bpfleet("lab", *args)
    if check and p.returncode != 0:
        raise RuntimeError(f"bpfleet lab {' '.join(args)}: exit {p.returncode}\n{p.stdout}\n{p.stderr}")
    return p


@pytest.fixture(scope="module")
def fleet(tmp_path_factory):
    """{lab, inventory, registry, journal, digests, hosts}: 5 hosts running sysprobe 1.0.0."""
    if os.geteuid() != 0:
        pytest.skip("the lab needs root (network namespaces, VMs, BPF)")
    for tool in ("clang", "qemu-system-x86_64", "sshd"):
        if not shutil.which(tool) and not os.path.exists(f"/usr/sbin/{tool}"):
            pytest.fail(f"{tool} is missing: scripts/setup.sh installs it")
    tmp = tmp_path_factory.mktemp("e2e")
    registry, journal = tmp / "registry", tmp / "journal.db"
    _lab("down")
    try:
        t = time.monotonic()
        digests = build_variants(registry, tmp / "src")
        lab = json.loads(_lab("up", "5", "--vms", "1", "--json").stdout)
        REPORT.append(f"lab up 5 --vms 1 + {len(digests)} sysprobe builds: {time.monotonic() - t:.1f} s")
        inventory = lab["inventory"]
        t = time.monotonic()
        install = ["fleet", "install", "-i", inventory, "--registry", str(registry), "--journal",
                   str(journal), "--program", f"{PROGRAM}@1.0.0", "--json",
                   "--env", f"BPFLEET_FAULT_CRASH_ON_LOAD={PROGRAM}@{CRASHES}"]
        p = bpfleet(*install)
        assert p.returncode == 0, f"fleet install failed:\n{p.stdout}\n{p.stderr}"
        rows = json.loads(p.stdout)
        assert all(r["ok"] and r["exporter"] and r["programs"].get(PROGRAM) == "1.0.0" for r in rows), rows
        REPORT.append(f"fleet install on 5 hosts (wheelhouse, venv, supervised exporter, "
                      f"{PROGRAM}@1.0.0): {time.monotonic() - t:.1f} s")
        yield {"lab": lab, "inventory": inventory, "registry": str(registry),
               "journal": str(journal), "digests": digests, "install": install,
               "hosts": {h["name"]: h for h in lab["hosts"]}}
    finally:
        t = time.monotonic()
        _lab("down", check=False)
        REPORT.append(f"lab down: {time.monotonic() - t:.1f} s")


@pytest.fixture
def rollout(fleet):
    """`bpfleet rollout NAME@VERSION ... --json` on the e2e fleet -> (exit code, events, result)."""
    def run(version: str, *args: str):
        t = time.monotonic()
        p = bpfleet("rollout", f"{PROGRAM}@{version}", "-i", fleet["inventory"], "--registry",
                    fleet["registry"], "--journal", fleet["journal"], "--bake", "3", "--json", *args)
        events = json_lines(p.stdout)
        assert events and events[-1]["kind"] == "result", \
            f"exit {p.returncode}, no result line:\n{p.stdout[-4000:]}\n{p.stderr[-4000:]}"
        REPORT.append(f"rollout {PROGRAM}@{version} {' '.join(args)}: {events[-1]['result']} in "
                      f"{time.monotonic() - t:.1f} s (Ansible {events[-1]['ansible_seconds']:.1f} s)")
        return p.returncode, events[:-1], events[-1]
    return run
