"""The rollout engine against an in-memory fleet: every path from the issue, without hosts."""
from __future__ import annotations

import pytest

from orchestrator.engine import journal as J
from orchestrator.engine.fleet import Artifact, HostFacts, Outcome
from orchestrator.engine.gates import Observation
from orchestrator.engine.rollout import (FAILED, NEEDS_ATTENTION, ROLLED_BACK, SUCCEEDED, Options, Rollouts)

NEW = Artifact("syscalls", "1.1.0", "ab" * 32, "/registry/syscalls/1.1.0")


class Killed(Exception):
    """The orchestrator process dies here."""


class FakeFleet:
    def __init__(self, kernels: dict[str, str], running="1.0.0"):
        self.kernels = dict(kernels)
        self.version = {h: running for h in kernels}
        self.unreachable: set[str] = set()
        self.rejects_on: set[str] = set()        # kernel builds whose verifier rejects NEW
        self.cost_ns = 60.0
        self.crash_on_upgrade: set[str] = set()   # the exporter dies when it loads NEW
        self.kill_after_upgrades: int | None = None
        self.calls: list[tuple] = []
        self.upgrades = 0

    def facts(self, hosts, program):
        return {h: (HostFacts(h, False, error="ssh: connection refused") if h in self.unreachable
                    else HostFacts(h, True, self.kernels[h], True, self.version[h])) for h in hosts}

    def preflight(self, host, artifact):
        self.calls.append(("preflight", host))
        if self.kernels[host] in self.rejects_on:
            return Outcome(host, False, "kernel refused to load: R2 invalid mem access")
        return Outcome(host, True)

    def upgrade(self, hosts, artifact):
        out = {}
        for h in hosts:
            if self.kill_after_upgrades is not None and self.upgrades >= self.kill_after_upgrades:
                raise Killed(h)
            self.upgrades += 1
            self.calls.append(("upgrade", h))
            if h in self.unreachable:
                out[h] = Outcome(h, False, "unreachable", unreachable=True)
            elif h in self.crash_on_upgrade:
                self.unreachable.add(h)
                out[h] = Outcome(h, False, "exporter stopped answering")
            else:
                self.version[h] = artifact.version
                out[h] = Outcome(h, True)
        return out

    def observe(self, hosts, program):
        self.calls.append(("observe", tuple(hosts)))
        n = 10_000 * (1 + sum(1 for c in self.calls if c[0] == "observe"))
        return {h: (Observation(h, False) if h in self.unreachable else
                    Observation(h, True, True, self.version[h], "attached", None,
                                int(n * (self.cost_ns if self.version[h] == NEW.version else 50)), n, 0.2))
                for h in hosts}

    def rollback(self, hosts, program, versions):
        out = {}
        for h in hosts:
            self.calls.append(("rollback", h))
            if h in self.unreachable:
                self.unreachable.discard(h)  # the supervisor restarted it on the old version
            self.version[h] = versions[h]
            out[h] = Outcome(h, True)
        return out


@pytest.fixture
def journal(tmp_path):
    j = J.Journal(str(tmp_path / "journal.db"))
    yield j
    j.close()


def kernels(n_a=6, n_b=2):
    return {**{f"a{i}": "6.18" for i in range(n_a)}, **{f"b{i}": "6.1" for i in range(n_b)}}


def engine(journal, fleet):
    events = []
    return Rollouts(journal, fleet, progress=events.append, sleep=lambda s: None), events


OPTS = Options(bake_seconds=0, budget_ns=200)


def test_good_version_reaches_every_host(journal):
    fleet = FakeFleet(kernels())
    r, events = engine(journal, fleet)
    rid, result = r.start(NEW, "inv", sorted(fleet.kernels), OPTS)
    assert result == SUCCEEDED
    assert set(fleet.version.values()) == {"1.1.0"}
    plan = journal.get(rid).plan
    assert plan[0]["kind"] == "canary" and sorted(plan[0]["hosts"]) == ["a0", "b0"]
    first_upgrade = next(i for i, c in enumerate(fleet.calls) if c[0] == "upgrade")
    assert {c[1] for c in fleet.calls[:first_upgrade] if c[0] == "preflight"} == {"a0", "b0"}
    assert journal.get(rid).state == J.SUCCEEDED


def test_verifier_rejection_on_one_kernel_build_stops_before_anything_is_attached(journal):
    fleet = FakeFleet(kernels())
    fleet.rejects_on = {"6.1"}
    r, _ = engine(journal, fleet)
    rid, result = r.start(NEW, "inv", sorted(fleet.kernels), OPTS)
    assert result == FAILED
    assert not [c for c in fleet.calls if c[0] == "upgrade"]
    assert "preflight on b0 (6.1)" in journal.get(rid).result


def test_incompatible_build_can_be_skipped_by_policy(journal):
    fleet = FakeFleet(kernels())
    fleet.rejects_on = {"6.1"}
    r, _ = engine(journal, fleet)
    _, result = r.start(NEW, "inv", sorted(fleet.kernels), Options(bake_seconds=0, incompatible="skip"))
    assert result == SUCCEEDED
    assert {h for h, v in fleet.version.items() if v == "1.1.0"} == {f"a{i}" for i in range(6)}


def test_over_budget_is_stopped_at_the_canary_and_rolled_back(journal):
    fleet = FakeFleet(kernels())
    fleet.cost_ns = 900
    r, _ = engine(journal, fleet)
    rid, result = r.start(NEW, "inv", sorted(fleet.kernels), OPTS)
    assert result == ROLLED_BACK
    upgraded = [c[1] for c in fleet.calls if c[0] == "upgrade"]
    assert sorted(upgraded) == ["a0", "b0"]                      # the canary only
    assert set(fleet.version.values()) == {"1.0.0"}
    rolled = [c[1] for c in fleet.calls if c[0] == "rollback"]
    assert rolled == list(reversed(upgraded))                   # newest first
    assert journal.host_states(rid) == {"a0": "rolled_back", "b0": "rolled_back"}


def test_exporter_crash_is_a_failure_and_rolls_back(journal):
    fleet = FakeFleet(kernels())
    fleet.crash_on_upgrade = {"b0"}
    r, _ = engine(journal, fleet)
    _, result = r.start(NEW, "inv", sorted(fleet.kernels), OPTS)
    assert result == ROLLED_BACK and set(fleet.version.values()) == {"1.0.0"}


def test_unreachable_host_counts_against_the_budget(journal):
    fleet = FakeFleet(kernels())
    fleet.unreachable = {"a5"}
    r, _ = engine(journal, fleet)
    _, result = r.start(NEW, "inv", sorted(fleet.kernels), OPTS)
    assert result == FAILED and not [c for c in fleet.calls if c[0] == "upgrade"]
    _, result = r.start(NEW, "inv", sorted(fleet.kernels), Options(bake_seconds=0, max_failures=1))
    assert result == SUCCEEDED and fleet.version["a5"] == "1.0.0"


def test_too_little_data_pauses_and_resume_continues(journal):
    fleet = FakeFleet(kernels())
    r, _ = engine(journal, fleet)
    rid, result = r.start(NEW, "inv", sorted(fleet.kernels), Options(bake_seconds=0, budget_ns=200, steps=("100%",)))
    assert result == SUCCEEDED
    # now the gate can't see enough events: no baseline and no cost data
    fleet2 = FakeFleet(kernels())
    fleet2.observe = lambda hosts, p: {h: Observation(h, True, True, fleet2.version[h], "attached", None, 0, 5, None)
                                       for h in hosts}
    r2, _ = engine(journal, fleet2)
    rid2, result = r2.start(NEW, "inv", sorted(fleet2.kernels), OPTS)
    assert result == NEEDS_ATTENTION and journal.get(rid2).state == J.PAUSED
    fleet2.observe = FakeFleet.observe.__get__(fleet2)
    assert Rollouts(journal, fleet2, sleep=lambda s: None).resume(rid2) == SUCCEEDED


def test_killed_mid_rollout_resumes_to_completion(journal):
    fleet = FakeFleet(kernels())
    fleet.kill_after_upgrades = 3
    r, _ = engine(journal, fleet)
    with pytest.raises(Killed):
        r.start(NEW, "inv", sorted(fleet.kernels), OPTS)
    (rid,) = [x.id for x in journal.history()]
    assert journal.get(rid).state == J.RUNNING
    fleet.kill_after_upgrades = None
    assert Rollouts(journal, fleet, sleep=lambda s: None).resume(rid) == SUCCEEDED
    assert set(fleet.version.values()) == {"1.1.0"}


def test_killed_mid_rollout_rolls_back_cleanly(journal):
    fleet = FakeFleet(kernels())
    fleet.kill_after_upgrades = 3
    r, _ = engine(journal, fleet)
    with pytest.raises(Killed):
        r.start(NEW, "inv", sorted(fleet.kernels), OPTS)
    (rid,) = [x.id for x in journal.history()]
    touched = journal.touched(rid)
    assert len(touched) == 4          # three upgraded and the one it died on
    assert Rollouts(journal, fleet, sleep=lambda s: None).rollback(rid) == ROLLED_BACK
    assert set(fleet.version.values()) == {"1.0.0"}
    assert journal.get(rid).state == J.ROLLED_BACK
