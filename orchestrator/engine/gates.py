"""Judging a wave after its bake time (pure).

Every check answers pass, fail or inconclusive. Too little data is inconclusive: the rollout
pauses and asks, it never passes on hope. Any fail aborts the rollout.
"""
from __future__ import annotations

from dataclasses import dataclass, field

PASS, FAIL, INCONCLUSIVE = "pass", "fail", "inconclusive"
MIN_EVENTS = 1000            # fewer events during the bake: the cost is noise, not a measurement
HEALTH_TOLERANCE = 1.25      # a host may be this much worse than baseline before it fails
HEALTH_SLACK = 0.10          # ...plus this much absolute load per CPU (idle hosts are noisy)


@dataclass(frozen=True)
class Observation:
    """What one host looked like after the bake (from its exporter's /status)."""
    host: str
    reachable: bool
    healthy: bool = False
    version: str | None = None
    state: str | None = None          # "attached", "failed", "stopped"
    error: str | None = None
    run_time_ns: int = 0              # kernel time in the program during the bake (delta)
    run_count: int = 0                # events during the bake (delta)
    load_per_cpu: float | None = None  # host health signal: 1-minute load average per CPU
    kernel: str | None = None          # kernel build: health is compared within a build


@dataclass(frozen=True)
class Check:
    name: str
    result: str
    detail: str
    hosts: tuple[str, ...] = ()


@dataclass(frozen=True)
class Verdict:
    result: str
    checks: tuple[Check, ...] = field(default_factory=tuple)

    def as_dict(self) -> dict:
        return {"result": self.result, "checks": [c.__dict__ | {"hosts": list(c.hosts)} for c in self.checks]}


def _check(name: str, bad: list[str], unsure: list[str], ok_detail: str, bad_detail: str,
           unsure_detail: str) -> Check:
    if bad:
        return Check(name, FAIL, bad_detail, tuple(bad))
    if unsure:
        return Check(name, INCONCLUSIVE, unsure_detail, tuple(unsure))
    return Check(name, PASS, ok_detail)


def check_reachable(obs: list[Observation]) -> Check:
    bad = [o.host for o in obs if not o.reachable or not o.healthy]
    return _check("exporter healthy", bad, [], "every exporter answers /healthz",
                  "exporter unreachable or unhealthy", "")


def check_attached(obs: list[Observation], version: str) -> Check:
    bad = [o.host for o in obs if o.reachable and (o.version != version or o.state != "attached")]
    return _check("attached", bad, [], f"{version} attached everywhere",
                  f"not running {version} attached", "")


def check_errors(obs: list[Observation]) -> Check:
    bad = [o.host for o in obs if o.reachable and o.error]
    return _check("no load errors", bad, [], "no errors", "load errors reported", "")


def check_cost(obs: list[Observation], budget_ns: float | None) -> Check:
    if budget_ns is None:
        return Check("cost within budget", PASS, "the program declares no budget")
    bad, unsure, worst = [], [], 0.0
    for o in obs:
        if not o.reachable:
            continue
        if o.run_count < MIN_EVENTS:
            unsure.append(o.host)
            continue
        cost = o.run_time_ns / o.run_count
        worst = max(worst, cost)
        if cost > budget_ns:
            bad.append(o.host)
    return _check("cost within budget", bad, unsure,
                  f"worst {worst:.0f} ns/event ≤ budget {budget_ns:.0f}",
                  f"over budget {budget_ns:.0f} ns/event",
                  f"fewer than {MIN_EVENTS} events during the bake: cost unknown")


def check_health(obs: list[Observation], baseline: list[Observation]) -> Check:
    """Wave hosts' health signal against baseline hosts (still on the old version, or the same
    hosts before the bake), of the same kernel build where the baseline has any: a fleet mixes
    machine classes, and a small VM's load says nothing about a big host's."""
    base = [o for o in baseline if o.reachable and o.load_per_cpu is not None]
    if not base:
        return Check("host health vs baseline", INCONCLUSIVE, "no baseline health data",
                     tuple(o.host for o in obs))
    unsure = [o.host for o in obs if o.reachable and o.load_per_cpu is None]
    bad, limits = [], {}
    for o in obs:
        if not o.reachable or o.load_per_cpu is None:
            continue
        same = [b.load_per_cpu for b in base if b.kernel == o.kernel] or [b.load_per_cpu for b in base]
        limit = limits[o.host] = max(same) * HEALTH_TOLERANCE + HEALTH_SLACK
        if o.load_per_cpu > limit:
            bad.append(o.host)
    worst = f"{min(limits.values()):.2f}" if limits else "?"
    return _check("host health vs baseline", bad, unsure,
                  f"load per CPU within {HEALTH_TOLERANCE}x its build's baseline max + {HEALTH_SLACK} "
                  f"(tightest limit {worst})",
                  "load per CPU above " + ", ".join(f"{h} {limits[h]:.2f}" for h in bad)
                  + f" ({HEALTH_TOLERANCE}x its build's baseline max + {HEALTH_SLACK})",
                  "no health signal from these hosts")


def judge(obs: list[Observation], baseline: list[Observation], version: str,
          budget_ns: float | None) -> Verdict:
    checks = (check_reachable(obs), check_attached(obs, version), check_errors(obs),
              check_cost(obs, budget_ns), check_health(obs, baseline))
    if any(c.result == FAIL for c in checks):
        return Verdict(FAIL, checks)
    if any(c.result == INCONCLUSIVE for c in checks):
        return Verdict(INCONCLUSIVE, checks)
    return Verdict(PASS, checks)
