"""Rollouts against a real lab: 4 netns hosts on this kernel and one Debian 6.1 VM (a second
kernel build, so the canary is two hosts), exporters installed by `bpfleet fleet install`, every
step through `bpfleet` as a subprocess, as a user or CI runs it. Every test starts with every
host on sysprobe 1.0.0 and a journal of its own (conftest.py's `fleet`), so each runs alone and
in any order. The paths that do not depend on a second kernel build — a canary over its cost
budget rolled back newest first, an orchestrator killed mid-rollout then resumed or rolled
back — are covered once, without the VM, by test_rollouts_netns.py (the VM costs CI minutes)."""
from __future__ import annotations

import json
import time
import urllib.request

import pytest

from e2ekit import PROGRAM, REPORT, VM_LAB, kill_sshd

pytestmark = pytest.mark.e2e
LAB = VM_LAB


def kinds(events: list[dict], kind: str) -> list[dict]:
    return [e for e in events if e.get("kind") == kind]


def vm_and_netns(fleet) -> tuple[str, list[str]]:
    (vm,) = [n for n, h in fleet.hosts.items() if h["kind"] == "vm"]
    return vm, sorted(n for n, h in fleet.hosts.items() if h["kind"] == "netns")


def test_plan_shows_builds_preflight_hosts_and_waves_and_changes_nothing(fleet):
    p = fleet.cli("plan", f"{PROGRAM}@1.1.0", "-i", fleet.inventory, "--registry", fleet.registry,
                  "--journal", fleet.journal, "--json")
    assert p.returncode == 0, p.stderr
    plan = json.loads(p.stdout)
    vm, netns = vm_and_netns(fleet)
    assert plan["digest"] == fleet.digests["1.1.0"]
    builds = {b["kernel"].split()[0]: b for b in plan["kernel_builds"]}
    assert len(builds) == 2 and any(k.startswith("6.1.") for k in builds)
    assert {b["preflight_host"] for b in builds.values()} == {vm, netns[0]}
    assert plan["waves"][0]["kind"] == "canary" and sorted(plan["waves"][0]["hosts"]) == sorted([vm, netns[0]])
    assert sorted(h for w in plan["waves"] for h in w["hosts"]) == sorted(fleet.hosts)
    assert {h["host"]: h["running"] for h in plan["hosts"]} == {h: "1.0.0" for h in fleet.hosts}
    fleet.all_on("1.0.0")
    assert fleet.history() == [], "plan wrote to the journal"


def test_fleet_install_is_idempotent_and_check_mode_changes_nothing(fleet):
    before = fleet.status()
    t = time.monotonic()
    p = fleet.cli(*fleet.install)
    assert p.returncode == 0, p.stdout[-3000:] + p.stderr[-3000:]
    again = {r["host"]: r for r in json.loads(p.stdout)}
    assert {h: r["changed"] for h, r in again.items()} == {h: [] for h in fleet.hosts}
    REPORT.append(f"{fleet.name}: fleet install again (nothing to do): {time.monotonic() - t:.1f} s")
    # check mode with another exporter setting: every host says what would change, none changes
    p = fleet.cli(*fleet.install, "--env", "BPFLEET_E2E_CHECK=1", "--check")
    assert p.returncode == 0, p.stdout[-3000:] + p.stderr[-3000:]
    would = {r["host"]: r for r in json.loads(p.stdout)}
    assert set(would) == set(fleet.hosts) and all(r["ok"] and r["changed"] for r in would.values()), would
    after = fleet.status()
    assert {h: r["pid"] for h, r in after.items()} == {h: r["pid"] for h, r in before.items()}
    p = fleet.cli(*fleet.install)
    assert all(r["changed"] == [] for r in json.loads(p.stdout)), "check mode left a change behind"


def test_good_version_reaches_every_host(fleet, rollout):
    code, events, res = rollout("1.1.0")
    assert (code, res["result"]) == (0, "succeeded"), res
    vm, netns = vm_and_netns(fleet)
    first_upgrade = next(i for i, e in enumerate(events) if e["kind"] == "host_upgrading")
    assert {e["host"] for e in kinds(events[:first_upgrade], "preflight")} == {vm, netns[0]}
    waves = fleet.history(res["rollout"])["rollout"]["waves"]
    assert waves[0]["kind"] == "canary" and sorted(waves[0]["hosts"]) == sorted([vm, netns[0]])
    assert all(g["result"] == "pass" for g in kinds(events, "gate"))
    assert len(kinds(events, "gate")) == len(waves)
    assert set(res["host_states"].values()) == {"upgraded"}
    fleet.all_on("1.1.0")
    fleet.journal_shows(("1.1.0", "succeeded"))


def test_version_the_6_1_verifier_refuses_is_stopped_in_preflight(fleet, rollout):
    code, events, res = rollout("1.2.0")
    assert (code, res["result"]) == (1, "failed"), res
    vm, netns = vm_and_netns(fleet)
    (bad,) = kinds(events, "host_incompatible")
    assert bad["host"] == vm and f"preflight on {vm}" in bad["error"]
    assert "kernel refused to load" in bad["error"], bad["error"]
    assert {e["host"] for e in kinds(events, "preflight")} == {vm, netns[0]}
    assert not kinds(events, "host_upgrading"), "something was attached before every build passed preflight"
    assert "nothing changed" in res["detail"]
    fleet.all_on("1.0.0")
    fleet.journal_shows(("1.2.0", "failed"))


def test_version_that_crashes_the_exporter_is_stopped_at_the_canary_and_rolled_back(fleet, rollout):
    before = fleet.status()
    code, events, res = rollout("1.4.0")
    assert (code, res["result"]) == (3, "rolled_back"), res
    vm, netns = vm_and_netns(fleet)
    failed = kinds(events, "host_failed")
    assert failed and "stopped answering" in failed[0]["error"], failed
    touched = {e["host"] for e in kinds(events, "host_upgrading")}
    assert touched == {vm, netns[0]}
    after = fleet.status()
    for h in touched:     # the process died and bpfleet-supervise started it again
        assert after[h]["pid"] != before[h]["pid"] and after[h]["restarts"] >= 1, after[h]
    for h in set(fleet.hosts) - touched:
        assert after[h]["pid"] == before[h]["pid"], after[h]
    fleet.all_on("1.0.0")
    fleet.journal_shows(("1.4.0", "rolled_back"))


def test_unreachable_host_counts_against_the_failure_budget(fleet, rollout):
    vm, netns = vm_and_netns(fleet)
    gone = fleet.hosts[netns[-1]]
    assert kill_sshd(gone), "no sshd found in the host's namespace"
    code, events, res = rollout("1.7.0")
    assert (code, res["result"]) == (1, "failed"), res
    assert [e["host"] for e in kinds(events, "host_failed")] == [gone["name"]]
    assert "unreachable" in kinds(events, "host_failed")[0]["error"]
    assert not kinds(events, "host_upgrading")
    code, events, res = rollout("1.7.0", "--max-failures", "1", "--steps", "100%")
    assert (code, res["result"]) == (0, "succeeded"), res
    assert res["host_states"][gone["name"]] == "failed"
    fleet.all_on("1.7.0", but=(gone["name"],))
    fleet.journal_shows(("1.7.0", "failed"), ("1.7.0", "succeeded"))
    # SSH is down, the host is not: its exporter still runs what it ran
    with urllib.request.urlopen(gone["exporter_url"] + "/status", timeout=10) as r:
        running = {p["name"]: p["version"] for p in json.load(r)["programs"]}
    assert running[PROGRAM] == "1.0.0"

