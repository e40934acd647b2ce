"""Budgets: core/budget.py (windows -> verdicts) and exporter/breaker.py's policy (degrade,
then detach; re-enable by hand or after a cooldown; a deploy by someone else resets), against a
fake supervisor with a fake clock. The real thing is tests/hardening/test_breaker_live.py."""
from __future__ import annotations

import threading
from dataclasses import dataclass, field

import pytest

from core.manifest import BudgetSpec, DegradeSpec
from core import budget as B
from exporter.breaker import Breaker
from exporter.config import BreakerConfig, Config, ProgramConfig
from exporter.exposition.text import render
from exporter.slot import ProgramView
from exporter.supervisor import ANY


def reading(t, **progs):
    return B.Reading(t, {k: v for k, v in progs.items()})


# ---------------------------------------------------------------- windows and verdicts

def test_window_deltas():
    w = B.window(reading(10.0, a=(1000, 10), b=(0, 0)), reading(12.0, a=(5000, 30), b=(100, 1)))
    assert w.seconds == 2.0 and w.programs == {"a": (4000, 20), "b": (100, 1)}
    assert w.runs == 21 and w.cpu_share == pytest.approx(4100 / 2e9)
    assert w.ns_per_event(min_events=5) == {"a": 200.0}


@pytest.mark.parametrize("prev,cur", [
    (reading(1.0, a=(0, 0)), reading(1.0, a=(10, 1))),          # no time passed
    (reading(1.0, a=(10, 5)), reading(2.0, a=(5, 6))),           # a counter went back
    (reading(1.0, a=(0, 0)), reading(2.0, a=(0, 0), b=(1, 1))),  # a BPF program appeared
])
def test_not_a_window(prev, cur):
    assert B.window(prev, cur) is None


def test_ns_per_event_rule_needs_enough_runs():
    b = B.Budget(ns_per_event=100)
    w = B.Window(1.0, {"p": (50_000, 99)})
    v = B.judge(b, w, min_events=100)
    assert not v.over and "too few runs" in v.reason
    v = B.judge(b, B.Window(1.0, {"p": (50_000, 100)}), min_events=100)
    assert v.over and "p averaged 500 ns per run over 100 runs (budget 100 ns)" in v.reason


def test_any_bpf_program_over_is_over():
    v = B.judge(B.Budget(ns_per_event=100), B.Window(1.0, {"cheap": (1000, 100), "dear": (50_000, 100)}), 10)
    assert v.over and v.reason.startswith("dear averaged 500") and "cheap" not in v.reason


def test_cpu_share_rule_ignores_run_counts():
    v = B.judge(B.Budget(cpu_share=0.01), B.Window(2.0, {"p": (30_000_000, 3)}), min_events=1000)
    assert v.over and "used 1.50% of a CPU (budget 1.00%)" in v.reason
    v = B.judge(B.Budget(cpu_share=0.02), B.Window(2.0, {"p": (30_000_000, 3)}), 1000)
    assert not v.over and v.reason == "within budget"


def test_streak_needs_consecutive_windows():
    s = B.Streak(3)
    over, under = B.Verdict(True, "", 0, 0), B.Verdict(False, "", 0, 0)
    assert [s.feed(v) for v in (over, over, under, over, over)] == [False] * 5
    assert s.feed(over) is True and s.count == 0


def test_effective_budget_layers_config_over_manifest():
    m = BudgetSpec(200.0, None, DegradeSpec("sample_every", (2, 4)))
    assert B.effective(m, None) == B.Budget(200.0, None, "sample_every", (2, 4))
    assert B.effective(m, BudgetSpec(None, 0.05, None)) == B.Budget(200.0, 0.05, "sample_every", (2, 4))
    assert B.effective(m, BudgetSpec(50.0, None, DegradeSpec("k", (9,)))) == B.Budget(50.0, None, "k", (9,))
    assert B.effective(m, False) is None
    assert B.effective(None, None) is None
    assert B.effective(None, BudgetSpec(None, None, DegradeSpec("k", (1,)))) is None  # no limit


def test_time_to_act():
    assert B.time_to_act(interval=5, windows=3, levels=0) == 20
    assert B.time_to_act(interval=5, windows=3, levels=3) == 80


# ---------------------------------------------------------------- the breaker's policy

@dataclass
class Knob:
    name: str


@dataclass
class FakeManifest:
    budget: object
    program_types: tuple = ()


@dataclass
class FakePlan:
    manifest: FakeManifest
    knobs: list
    metrics: tuple = ()


@dataclass
class Art:
    name: str
    version: str = "1.0.0"

    @property
    def ref(self):
        return f"{self.name}@{self.version}"


@dataclass
class FakeProgram:
    artifact: Art
    plan: FakePlan
    knobs: dict
    time_ns: int = 0
    runs: int = 0

    @property
    def name(self):
        return self.artifact.name


@dataclass
class FakeSlot:
    wanted: ProgramConfig
    running: FakeProgram | None = None
    tripped: str | None = None


@dataclass
class FakeSupervisor:
    """The Supervisor's interface as the breaker uses it: views, view, deploy, trip."""
    budget: object
    knobs: tuple = ("sample_every",)
    cost_ns: float = 1000.0               # per event at sample_every = 1
    slots: dict = field(default_factory=dict)
    program_configs: dict = field(default_factory=dict)
    deploys: list = field(default_factory=list)
    fail_deploys: bool = False
    lock: object = field(default_factory=threading.RLock)

    def start(self, name="p"):
        pc = ProgramConfig(name, "latest", {"sample_every": 1})
        self.slots[name] = FakeSlot(pc)
        self.deploy(pc)

    def deploy(self, pc, digest=None, *, expect=ANY):
        slot = self.slots[pc.name]
        if expect is not ANY and slot.running is not expect:
            return f"{pc.name} changed meanwhile; not deployed"
        self.deploys.append(pc)
        slot.wanted = pc
        if self.fail_deploys:
            return "kernel refused"
        plan = FakePlan(FakeManifest(self.budget), [Knob(k) for k in self.knobs])
        slot.running, slot.tripped = FakeProgram(Art(pc.name), plan, dict(pc.knobs)), None
        return None

    def trip(self, name, reason, *, expect=ANY):
        slot = self.slots[name]
        if slot.running is None or expect is not ANY and slot.running is not expect:
            return False
        slot.running, slot.tripped = None, reason
        return True

    def view(self, name, stats=False):
        s = self.slots.get(name)
        if s is None:
            return None
        ks = {"prog": KS(s.running.time_ns, s.running.runs)} if stats and s.running else {}
        return ProgramView(name, s.wanted, s.running, self.program_configs.get(name), s.tripped, ks)

    def views(self, kernel_stats=False):
        return {n: self.view(n, kernel_stats) for n in self.slots}

    def run(self, seconds=1.0, events=10_000):
        """The workload: every running program sees `events` events."""
        for s in self.slots.values():
            if s.running:
                every = s.running.knobs.get("sample_every", 1)
                s.running.runs += events
                s.running.time_ns += int(events * self.cost_ns / every)



@dataclass
class KS:
    run_time_ns: int
    run_cnt: int


class Clock:
    def __init__(self):
        self.t = 1000.0

    def __call__(self):
        return self.t


def make(budget, breaker=BreakerConfig(windows=2, min_events=100), **kw):
    sup = FakeSupervisor(budget, **kw)
    sup.start()
    cfg = Config("c.toml", breaker=breaker)
    clock = Clock()
    br = Breaker(sup, lambda: cfg, clock=clock, wall=clock)
    return sup, br, clock


def ticks(sup, br, clock, n, events=10_000):
    for _ in range(n):
        br.tick()
        sup.run(events=events)
        clock.t += 1.0


def test_degrades_step_by_step_then_stays_when_within_budget():
    budget = BudgetSpec(300.0, None, DegradeSpec("sample_every", (2, 4, 8)))
    sup, br, clock = make(budget)
    ticks(sup, br, clock, 1)          # baseline
    ticks(sup, br, clock, 2)          # 2 windows at 1000 ns: breach -> sample_every=2
    assert sup.slots["p"].running.knobs == {"sample_every": 2}
    assert [pc.version for pc in sup.deploys[1:]] == ["1.0.0"], "degrade keeps the running version"
    ticks(sup, br, clock, 3)          # baseline + 2 windows at 500 ns -> 4
    assert sup.slots["p"].running.knobs == {"sample_every": 4}
    ticks(sup, br, clock, 10)         # 250 ns: within budget, stays
    st = br.status("p")
    assert st["degraded_level"] == 2 and st["degraded_to"] == {"sample_every": 4}
    assert st["breaches"] == 2 and not st["tripped"]
    assert [h["action"] for h in st["history"]] == ["degrade", "degrade"]
    assert st["window"]["ns_per_event"] == {"prog": 250.0} and not st["window"]["over"]


def test_detaches_after_the_last_degrade_step():
    sup, br, clock = make(BudgetSpec(10.0, None, DegradeSpec("sample_every", (2,))))
    ticks(sup, br, clock, 1 + 2 + 3)
    assert sup.slots["p"].running is None and "over budget" in sup.slots["p"].tripped
    st = br.status("p")
    assert st["tripped"] and st["trips"] == 1 and st["breaches"] == 2
    assert [h["action"] for h in st["history"]] == ["degrade", "trip"]
    text = render(br.families()).decode()
    assert 'bpfleet_program_tripped{program="p"} 1' in text
    assert 'bpfleet_program_budget_breaches_total{program="p"} 2' in text
    assert 'bpfleet_program_degraded_level{program="p"} 1' in text


def test_no_degrade_detaches_at_first_breach_and_stays_off_by_default():
    sup, br, clock = make(BudgetSpec(10.0, None, None))
    ticks(sup, br, clock, 3)
    assert sup.slots["p"].running is None
    ticks(sup, br, clock, 5000)        # manual: no cooldown re-enable, ever
    assert sup.slots["p"].running is None and len(sup.deploys) == 1


def test_manual_reenable_by_a_deploy_resets():
    sup, br, clock = make(BudgetSpec(10.0, None, DegradeSpec("sample_every", (2,))))
    ticks(sup, br, clock, 6)
    assert sup.slots["p"].running is None
    sup.deploy(ProgramConfig("p", "latest", {"sample_every": 1}))   # the admin API's PUT
    ticks(sup, br, clock, 1)
    st = br.status("p")
    assert not st["tripped"] and st["degraded_level"] == 0
    assert st["history"][-1]["action"] == "reset"
    ticks(sup, br, clock, 2)           # still too dear: the cycle starts again from level 0
    assert sup.slots["p"].running.knobs == {"sample_every": 2}


def test_reenable_after_cooldown():
    cfg = BreakerConfig(windows=2, min_events=100, reenable="after", cooldown_seconds=30)
    sup, br, clock = make(BudgetSpec(10.0, None, None), breaker=cfg)
    ticks(sup, br, clock, 3)
    assert sup.slots["p"].running is None
    st = br.status("p")
    assert st["reenable_at"] == pytest.approx(st["tripped_at"] + 30)
    ticks(sup, br, clock, 29)
    assert sup.slots["p"].running is None
    ticks(sup, br, clock, 2)
    assert sup.slots["p"].running is not None
    assert sup.deploys[-1] == ProgramConfig("p", "latest", {"sample_every": 1}), "as configured"
    assert br.status("p")["history"][-1]["action"] == "reenable"


def test_failed_degrade_detaches_instead():
    sup, br, clock = make(BudgetSpec(10.0, None, DegradeSpec("sample_every", (2,))))
    ticks(sup, br, clock, 1)
    sup.fail_deploys = True
    ticks(sup, br, clock, 2)
    assert sup.slots["p"].tripped
    assert [h["action"] for h in br.status("p")["history"]] == ["degrade-failed", "trip"]


def test_unknown_degrade_knob_detaches_with_a_note():
    sup, br, clock = make(BudgetSpec(10.0, None, DegradeSpec("nope", (2,))))
    ticks(sup, br, clock, 3)
    assert sup.slots["p"].tripped and "degrade knob 'nope'" in br.status("p")["note"]


def test_config_override_and_off_switch():
    sup, br, clock = make(BudgetSpec(10.0, None, None))
    sup.program_configs["p"] = ProgramConfig("p", budget=False)
    ticks(sup, br, clock, 10)
    assert sup.slots["p"].running is not None and br.status("p")["limits"] is None
    sup.program_configs["p"] = ProgramConfig("p", budget=BudgetSpec(5000.0, None, None))
    ticks(sup, br, clock, 10)
    st = br.status("p")
    assert sup.slots["p"].running is not None and st["limits"]["ns_per_event"] == 5000.0
    assert st["source"] == "manifest+config"


def test_idle_program_is_never_judged_on_ns_per_event():
    sup, br, clock = make(BudgetSpec(10.0, None, None))
    ticks(sup, br, clock, 20, events=5)         # below min_events
    assert sup.slots["p"].running is not None


def test_disabled_breaker_does_nothing():
    sup, br, clock = make(BudgetSpec(10.0, None, None), breaker=BreakerConfig(enabled=False))
    ticks(sup, br, clock, 20)
    assert sup.slots["p"].running is not None and br.status("p") is None



def test_deploy_by_someone_else_between_measuring_and_tripping_wins():
    """The breaker trips only the program it measured (Supervisor.trip's `expect`): one the
    admin API deployed in between keeps running, and the breaker starts afresh with it."""
    sup, br, clock = make(BudgetSpec(10.0, None, None))
    real_trip = sup.trip

    def trip_after_a_redeploy(name, reason, *, expect):
        sup.deploy(ProgramConfig(name, "latest", {"sample_every": 1}))   # the admin API, say
        return real_trip(name, reason, expect=expect)
    sup.trip = trip_after_a_redeploy
    ticks(sup, br, clock, 3)
    assert sup.slots["p"].running is not None and sup.slots["p"].tripped is None
    assert br.status("p")["trips"] == 0 and not br.status("p")["tripped"]
