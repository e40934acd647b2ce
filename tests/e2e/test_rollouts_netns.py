"""Rollouts, canary rollback, resume and rollback through real Ansible to 4 network-namespace
hosts and no VM, so the real path stays tested on a machine where no VM boots (their own lab,
bpfle2n, beside test_rollouts.py's). One kernel build: the canary is one host, then waves
[ns2], [ns3, ns4]. Every test starts with every host on sysprobe 1.0.0 and a journal of its
own (conftest.py's `fleet`)."""
from __future__ import annotations

import time

import pytest

from e2ekit import NETNS_LAB, PROGRAM, REPORT, json_lines, result_of, rollout_killed_after

pytestmark = pytest.mark.e2e
LAB = NETNS_LAB


def kinds(events: list[dict], kind: str) -> list[dict]:
    return [e for e in events if e.get("kind") == kind]


def hosts_of(events: list[dict], kind: str) -> list[str]:
    return [e["host"] for e in kinds(events, kind)]


def planned_waves(fleet, rid: str) -> list[list[str]]:
    waves = fleet.history(rid)["rollout"]["waves"]
    assert waves[0]["kind"] == "canary" and len(waves) >= 3, waves   # wave 1 is mid-rollout
    return [sorted(w["hosts"]) for w in waves]


def test_good_version_reaches_every_netns_host(fleet, rollout):
    code, events, res = rollout("1.1.0")
    assert (code, res["result"]) == (0, "succeeded"), f"{res}\n{events[-6:]}"
    waves = planned_waves(fleet, res["rollout"])
    assert waves[0] == [min(fleet.hosts)] and sorted(h for w in waves for h in w) == sorted(fleet.hosts)
    assert sorted(set(hosts_of(events, "preflight"))) == waves[0]   # one kernel build, one preflight host
    assert sorted(hosts_of(events, "host_upgraded")) == sorted(fleet.hosts)   # each exactly once
    assert [g["result"] for g in kinds(events, "gate")] == ["pass"] * len(waves)
    assert res["host_states"] == {h: "upgraded" for h in fleet.hosts}
    fleet.all_on("1.1.0")
    fleet.journal_shows(("1.1.0", "succeeded"))


def test_canary_over_its_cost_budget_is_rolled_back_and_no_other_host_is_touched(fleet, rollout):
    code, events, res = rollout("1.3.0", "--budget-ns", "500")
    assert (code, res["result"]) == (3, "rolled_back"), res
    canary = [min(fleet.hosts)]
    assert hosts_of(events, "host_upgraded") == canary
    (gate,) = kinds(events, "gate")
    cost = next(c for c in gate["checks"] if c["name"] == "cost within budget")
    assert (gate["result"], cost["result"], cost["hosts"]) == ("fail", "fail", canary), gate
    assert hosts_of(events, "host_rolling_back") == canary
    assert [(e["host"], e["version"]) for e in kinds(events, "host_rolled_back")] == [(canary[0], "1.0.0")]
    fleet.all_on("1.0.0")
    fleet.journal_shows(("1.3.0", "rolled_back"))


def test_orchestrator_killed_mid_rollout_resumes_without_redoing_passed_waves(fleet):
    t = time.monotonic()
    rid, killed_events = rollout_killed_after(fleet.rollout_args("1.5.0"), "host_upgraded", 1, LAB)
    waves = planned_waves(fleet, rid)
    assert [e["wave"] for e in kinds(killed_events, "wave_passed")] == [0]
    assert fleet.history(rid)["rollout"]["state"] == "running"
    status = fleet.status()      # killed between waves: the first two on the new version, the rest not
    assert {h: r["programs"][PROGRAM]["version"] for h, r in status.items()} == \
        {h: "1.5.0" if h in waves[0] + waves[1] else "1.0.0" for h in fleet.hosts}
    killed = time.monotonic() - t
    p = fleet.cli("resume", rid, "--journal", fleet.journal, "--json")
    res = result_of(p)
    REPORT.append(f"{fleet.name}: rollout {PROGRAM}@1.5.0 SIGKILLed in wave 1 after {killed:.1f} s, "
                  f"resume: {res['result']} in {time.monotonic() - t - killed:.1f} s")
    assert (p.returncode, res["result"]) == (0, "succeeded"), p.stdout[-3000:] + p.stderr[-3000:]
    after = json_lines(p.stdout)
    assert [e["kind"] for e in after[:1]] == ["resumed"], after[:3]
    # the canary passed its gate before the kill: not redone; wave 1 and the rest run (again)
    assert [e["wave"] for e in kinds(after, "wave_started")] == list(range(1, len(waves)))
    assert sorted(hosts_of(after, "host_upgraded")) == sorted(h for w in waves[1:] for h in w)
    assert res["host_states"] == {h: "upgraded" for h in fleet.hosts}
    fleet.all_on("1.5.0")
    fleet.journal_shows(("1.5.0", "succeeded"))


def test_orchestrator_killed_mid_rollout_rolls_back_every_touched_host_newest_first(fleet):
    rid, killed_events = rollout_killed_after(fleet.rollout_args("1.6.0"), "host_upgraded", 1, LAB)
    waves = planned_waves(fleet, rid)
    touched = hosts_of(killed_events, "host_upgrading")
    assert touched == waves[0] + waves[1], killed_events
    assert fleet.history(rid)["rollout"]["state"] == "running"
    t = time.monotonic()
    p = fleet.cli("rollback", rid, "--journal", fleet.journal, "--json")
    res = result_of(p)
    REPORT.append(f"{fleet.name}: rollout {PROGRAM}@1.6.0 SIGKILLed in wave 1, rollback: "
                  f"{res['result']} in {time.monotonic() - t:.1f} s")
    assert (p.returncode, res["result"]) == (3, "rolled_back"), p.stdout[-3000:] + p.stderr[-3000:]
    events = json_lines(p.stdout)
    assert hosts_of(events, "host_rolling_back") == list(reversed(touched))
    assert sorted((e["host"], e["version"]) for e in kinds(events, "host_rolled_back")) == \
        [(h, "1.0.0") for h in sorted(touched)]
    assert {h for h, s in res["host_states"].items() if s == "rolled_back"} == set(touched)
    assert fleet.history(rid)["rollout"]["state"] == "rolled_back"
    fleet.all_on("1.0.0")
    fleet.journal_shows(("1.6.0", "rolled_back"))
