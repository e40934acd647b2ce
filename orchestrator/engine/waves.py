"""Planning a rollout's waves (pure).

Hosts are grouped by kernel build. The first wave is the canary: one host of every kernel build,
so each build meets the new version before the rest of the fleet. The remaining hosts follow in
waves sized as cumulative fractions of the whole fleet (default: 1 host, 10%, 50%, 100%),
interleaving kernel builds so every wave spreads over them rather than finishing one first.
"""
from __future__ import annotations

import math
from dataclasses import dataclass

DEFAULT_STEPS = ("1", "10%", "50%", "100%")


@dataclass(frozen=True)
class Host:
    name: str
    kernel: str          # kernel build: release plus build id (`uname -r` + `uname -v`)


@dataclass(frozen=True)
class Wave:
    index: int
    kind: str            # "canary" or "wave"
    hosts: tuple[str, ...]


def parse_step(step: str, fleet: int) -> int:
    """"10%" or "3" → a cumulative host count (at least 1, at most the fleet)."""
    s = step.strip()
    try:
        if s.endswith("%"):
            pct = float(s[:-1])
            if not 0 < pct <= 100:
                raise ValueError
            n = math.ceil(fleet * pct / 100)
        else:
            n = int(s)
            if n < 1:
                raise ValueError
    except ValueError:
        raise ValueError(f"wave step {step!r}: expected a host count (\"1\") or a percentage (\"10%\")")
    return max(1, min(n, fleet))


def by_kernel(hosts: list[Host]) -> dict[str, list[str]]:
    groups: dict[str, list[str]] = {}
    for h in sorted(hosts, key=lambda h: h.name):
        groups.setdefault(h.kernel, []).append(h.name)
    return dict(sorted(groups.items()))


def interleave(groups: dict[str, list[str]]) -> list[str]:
    """Round-robin over kernel builds, so consecutive hosts differ in kernel where possible."""
    out, queues = [], [list(v) for v in groups.values()]
    while any(queues):
        for q in queues:
            if q:
                out.append(q.pop(0))
    return out


def plan_waves(hosts: list[Host], steps: tuple[str, ...] = DEFAULT_STEPS, canary: bool = True) -> list[Wave]:
    if not hosts:
        return []
    groups = by_kernel(hosts)
    waves: list[Wave] = []
    done: list[str] = []
    if canary:
        first = tuple(names[0] for names in groups.values())
        waves.append(Wave(0, "canary", first))
        done.extend(first)
    rest = [h for h in interleave(groups) if h not in done]
    fleet = len(hosts)
    for step in steps:
        target = parse_step(step, fleet)
        take = max(0, target - len(done))
        if take == 0 or not rest:
            continue
        batch, rest = tuple(rest[:take]), rest[take:]
        waves.append(Wave(len(waves), "wave", batch))
        done.extend(batch)
    if rest:  # steps that stop short of 100% still finish the fleet
        waves.append(Wave(len(waves), "wave", tuple(rest)))
    return waves
