"""Fixtures for the rollout e2e tests. Each test module names its lab (`LAB = e2ekit.VM_LAB` or
`NETNS_LAB`); the lab comes up once per module (booting is slow) and goes down at the end
whatever happened, also when setting it up failed. Every test then starts from the same state,
established by the `fleet` fixture before it runs (e2efleet.LabFleet.reset): no test depends on
what an earlier one did or left behind, so they run alone, in any order, and one failure stays
one failure. A module whose lab cannot come up (no VM boots) errors with the reason; the other
module's lab is its own."""
from __future__ import annotations

import os
import shutil
import time

import pytest

from e2efleet import LabFleet
from e2ekit import PROGRAM, REPORT, build_variants, json_lines


def pytest_configure(config):
    config.addinivalue_line("markers", "e2e: rollouts against a real lab (netns hosts, a VM)")


def pytest_terminal_summary(terminalreporter):
    if REPORT:
        terminalreporter.section("bpfleet rollout e2e")
        for line in REPORT:
            terminalreporter.write_line(line)


@pytest.hookimpl(hookwrapper=True)
def pytest_runtest_makereport(item, call):
    """Keep each phase's report on the test, for the `fleet` fixture to see a failure."""
    outcome = yield
    rep = outcome.get_result()
    setattr(item, f"rep_{rep.when}", rep)


@pytest.fixture(scope="session")
def variants(tmp_path_factory):
    """(registry, version -> digest): every sysprobe version, built once for all modules."""
    if os.geteuid() != 0:
        pytest.skip("the lab needs root (network namespaces, VMs, BPF)")
    for tool in ("clang", "sshd"):
        if not shutil.which(tool) and not os.path.exists(f"/usr/sbin/{tool}"):
            pytest.fail(f"{tool} is missing: scripts/setup.sh installs it")
    tmp = tmp_path_factory.mktemp("variants")
    t = time.monotonic()
    digests = build_variants(tmp / "registry", tmp / "src")
    REPORT.append(f"{len(digests)} sysprobe builds: {time.monotonic() - t:.1f} s")
    return str(tmp / "registry"), digests


@pytest.fixture(scope="module")
def lab_fleet(request, variants, tmp_path_factory):
    """The module's lab (its `LAB`), exporters installed, every host on sysprobe 1.0.0."""
    spec = request.module.LAB
    if spec.vms and not shutil.which("qemu-system-x86_64"):
        pytest.fail("qemu-system-x86_64 is missing: scripts/setup.sh installs it")
    registry, digests = variants
    fleet = LabFleet(spec, registry, digests, tmp_path_factory.mktemp(spec.env["BPFLEET_LAB_PREFIX"]))
    try:
        fleet.up()
        yield fleet
    finally:
        fleet.down()


@pytest.fixture
def fleet(lab_fleet, request, tmp_path):
    """The module's fleet, put back on sysprobe 1.0.0 everywhere, with a journal of this test's."""
    lab_fleet.reset(str(tmp_path / "journal.db"))
    yield lab_fleet
    if any(getattr(request.node, f"rep_{w}", None) and getattr(request.node, f"rep_{w}").failed
           for w in ("setup", "call")):
        lab_fleet.dirty = True       # whatever it left, the next reset repairs all of it


@pytest.fixture
def rollout(fleet):
    """`bpfleet rollout NAME@VERSION ... --json` on the fleet -> (exit code, events, result)."""
    def run(version: str, *args: str):
        t = time.monotonic()
        p = fleet.cli(*fleet.rollout_args(version, *args))
        events = json_lines(p.stdout)
        assert events and events[-1]["kind"] == "result", \
            f"exit {p.returncode}, no result line:\n{p.stdout[-4000:]}\n{p.stderr[-4000:]}"
        REPORT.append(f"{fleet.name}: rollout {PROGRAM}@{version} {' '.join(args)}: "
                      f"{events[-1]['result']} in {time.monotonic() - t:.1f} s "
                      f"(Ansible {events[-1]['ansible_seconds']:.1f} s)")
        return p.returncode, events[:-1], events[-1]
    return run
