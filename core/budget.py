"""Judging a program's kernel cost against its budget. Pure: readings in, verdicts out.

A *reading* is the kernel's run-time statistics (bpf_stats: run_time_ns and run_cnt per BPF
program of one loaded program) at one moment. Two consecutive readings make a *window*. A
window is **over budget** when

* `ns_per_event`: some BPF program of the object ran at least `min_events` times in the window
  and averaged more than `ns_per_event` ns per run (windows with fewer runs say nothing about
  the average and count as not over); or
* `cpu_share`: all its BPF programs together used more than `cpu_share` CPUs over the window
  (0.02 = 2% of one CPU), whatever the number of runs.

A **breach** is `windows` consecutive over-budget windows; any window that is not over starts
the count again. exporter/breaker.py acts on breaches (docs/operations.md#budgets).
"""
from __future__ import annotations

from dataclasses import dataclass, field, replace


@dataclass(frozen=True)
class Budget:
    ns_per_event: float | None = None
    cpu_share: float | None = None
    degrade_knob: str | None = None
    degrade_values: tuple = ()

    @property
    def limits(self) -> bool:
        return self.ns_per_event is not None or self.cpu_share is not None

    def as_dict(self) -> dict:
        d = {"ns_per_event": self.ns_per_event, "cpu_share": self.cpu_share}
        if self.degrade_knob:
            d["degrade"] = {"knob": self.degrade_knob, "values": list(self.degrade_values)}
        return d


def effective(manifest_budget, override) -> Budget | None:
    """The manifest's [budget] with the host's override laid over it field by field.
    `override`: None (none), False (budget off on this host) or a BudgetSpec-like object."""
    if override is False:
        return None
    b = Budget()
    for spec in (manifest_budget, override):
        if spec is None:
            continue
        if spec.ns_per_event is not None:
            b = replace(b, ns_per_event=spec.ns_per_event)
        if spec.cpu_share is not None:
            b = replace(b, cpu_share=spec.cpu_share)
        if spec.degrade is not None:
            b = replace(b, degrade_knob=spec.degrade.knob, degrade_values=tuple(spec.degrade.values))
    return b if b.limits else None


@dataclass(frozen=True)
class Reading:
    time: float                     # monotonic seconds
    programs: dict                  # BPF program name -> (run_time_ns, run_cnt)


@dataclass(frozen=True)
class Window:
    seconds: float
    programs: dict                  # BPF program name -> (run time ns, runs) in the window

    @property
    def runs(self) -> int:
        return sum(n for _t, n in self.programs.values())

    @property
    def cpu_share(self) -> float:
        total = sum(t for t, _n in self.programs.values())
        return total / (self.seconds * 1e9) if self.seconds > 0 else 0.0

    def ns_per_event(self, min_events: int = 1) -> dict:
        return {p: t / n for p, (t, n) in self.programs.items() if n >= max(min_events, 1)}


def window(prev: Reading, cur: Reading) -> Window | None:
    """The window between two readings of the same loaded program; None if it can't be one
    (no time passed, a BPF program appeared or went, a counter went backwards)."""
    seconds = cur.time - prev.time
    if seconds <= 0 or set(prev.programs) != set(cur.programs):
        return None
    progs = {}
    for name, (t, n) in cur.programs.items():
        pt, pn = prev.programs[name]
        if t < pt or n < pn:
            return None
        progs[name] = (t - pt, n - pn)
    return Window(seconds, progs)


@dataclass(frozen=True)
class Verdict:
    over: bool
    reason: str                     # what was over, or why not: for logs and /status
    cpu_share: float
    runs: int
    ns_per_event: dict = field(default_factory=dict)   # per BPF program with enough runs

    def as_dict(self) -> dict:
        return {"over": self.over, "reason": self.reason, "cpu_share": round(self.cpu_share, 6),
                "runs": self.runs, "ns_per_event": {k: round(v, 1) for k, v in self.ns_per_event.items()}}


def judge(budget: Budget, w: Window, min_events: int) -> Verdict:
    per_event = w.ns_per_event(min_events)
    share = w.cpu_share
    over = []
    if budget.ns_per_event is not None:
        for prog, ns in sorted(per_event.items(), key=lambda kv: -kv[1]):
            if ns > budget.ns_per_event:
                over.append(f"{prog} averaged {ns:,.0f} ns per run over {w.programs[prog][1]:,} runs "
                            f"(budget {budget.ns_per_event:,.0f} ns)")
    if budget.cpu_share is not None and share > budget.cpu_share:
        over.append(f"used {share:.2%} of a CPU (budget {budget.cpu_share:.2%})")
    if over:
        return Verdict(True, "; ".join(over), share, w.runs, per_event)
    if budget.ns_per_event is not None and not per_event and budget.cpu_share is None:
        why = f"too few runs to judge ns per run (< {min_events} per BPF program)"
    else:
        why = "within budget"
    return Verdict(False, why, share, w.runs, per_event)


class Streak:
    """Counts consecutive over-budget windows; says when they make a breach."""

    def __init__(self, windows: int):
        self.windows = windows
        self.count = 0

    def feed(self, v: Verdict) -> bool:
        self.count = self.count + 1 if v.over else 0
        if self.count >= self.windows:
            self.count = 0
            return True
        return False

    def reset(self) -> None:
        self.count = 0


def reading_of(stats: dict, now: float) -> Reading:
    """libbpf.KernelStats per BPF program -> Reading."""
    return Reading(now, {n: (s.run_time_ns, s.run_cnt) for n, s in stats.items()})


def time_to_act(interval: float, windows: int, levels: int) -> float:
    """Worst case from the start of a sustained overload to the program being detached:
    each step (every degrade level, then the detach) needs a baseline reading and `windows`
    full windows after it, and the overload can begin just after a reading."""
    return (levels + 1) * (windows + 1) * interval
