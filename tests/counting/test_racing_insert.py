"""Racing first inserts, in this kernel: bpfleet_map_increment() (programs/include/bpfleet.h)
counts every event when several CPUs hit a fresh key at once; the pattern it replaced (lookup;
if missing, insert 1 with BPF_NOEXIST, nothing more) loses the events whose insert lost.

programs/racecount counts the getppid() calls of a few worker processes, one per CPU, under a
key that changes every 16 events, in a hash map and in a per-CPU hash map. The workers make a
known number of calls, so the counts must be exact. Each round loads the object afresh: empty
maps. About 3 s per round on 2 CPUs."""
from __future__ import annotations

from pathlib import Path

import pytest

from racekit import REPORT, build, calls_each, cpus, run_round

ROUNDS = 3                 # of the helper, each must be exact
OLD_ROUNDS = 10            # at most, until the old pattern has lost a count in both maps


@pytest.fixture(scope="module")
def objects(tmp_path_factory) -> dict[str, Path]:
    return build(tmp_path_factory.mktemp("racecount"))


@pytest.fixture(scope="module")
def cpu_list() -> list[int]:
    found = cpus()
    if len(found) < 2:
        pytest.skip("one CPU: no two inserts can race")
    return found


def test_helper_counts_every_event_of_racing_first_inserts(objects, cpu_list):
    raced = {"shared": 0, "percpu": 0}
    for _ in range(ROUNDS):
        r = run_round(objects["racecount"], cpu_list)
        assert r.events == r.calls, f"the program saw {r.events} of the workers' {r.calls} calls"
        assert r.globals["not_counted"] == 0, r.globals
        assert (r.shared, r.percpu) == (r.calls, r.calls), (
            f"{r.calls} events in {r.keys} fresh keys: the hash map counted {r.shared}, the per-CPU "
            f"hash map {r.percpu}")
        for which in raced:
            raced[which] += r.raced(which)
    REPORT.append(f"bpfleet_map_increment: {ROUNDS} rounds of {len(cpu_list)} x {calls_each(len(cpu_list))} events, "
                  f"{raced['shared']} (hash) and {raced['percpu']} (per-CPU hash) raced a first insert; "
                  "every event counted")
    # Otherwise the workload never made two CPUs insert one key at once, and proved nothing.
    assert raced["shared"] > 0 and raced["percpu"] > 0, raced


def test_old_pattern_loses_the_events_of_racing_first_inserts(objects, cpu_list):
    """The same workload, counted the old way: the count comes up short by exactly the inserts
    that failed with -EEXIST. Racing is chance; it loses within a few rounds here (most rounds
    lose hundreds), so the helper's exact counts above are not luck."""
    lost = {"shared": 0, "percpu": 0}
    for rounds in range(1, OLD_ROUNDS + 1):
        r = run_round(objects["racecount_old"], cpu_list)
        assert r.events == r.calls and r.globals["not_counted"] == 0, r
        assert r.shared + r.globals["lost_shared"] == r.calls, r
        assert r.percpu + r.globals["lost_percpu"] == r.calls, r
        lost["shared"] += r.globals["lost_shared"]
        lost["percpu"] += r.globals["lost_percpu"]
        if all(lost.values()):
            break
    REPORT.append(f"old lookup-or-insert: lost {lost['shared']} (hash) and {lost['percpu']} (per-CPU hash) "
                  f"events in {rounds} round(s) of {len(cpu_list)} x {calls_each(len(cpu_list))}")
    assert all(lost.values()), f"the old pattern lost nothing in {rounds} rounds: {lost}"
