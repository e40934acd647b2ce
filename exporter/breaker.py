"""The circuit breaker: measures every running program's kernel cost and acts on budget breaches.

A thread reads bpf_stats (run time and run count per BPF program; no map is read) every
`[breaker] interval_seconds`; core/budget.py judges each window against the program's
budget (manifest [budget], overridden per host by `[programs.<name>] budget`). On a breach
(`windows` consecutive over-budget windows):

1. if the budget offers a degrade step (`degrade = { knob = "sample_every", values = [2, 4, 8] }`)
   and values are left, the program is upgraded in place to the same version with the knob at
   the next value (Supervisor.deploy: the new one is attached before the old one goes, maps
   and counts carry over);
2. otherwise it is detached and unloaded (Supervisor.trip): state "tripped" in /status.
Both act only if the program measured is still the one running (`expect`): a deploy by someone
else in between wins.

Every step is logged, kept in /status (`budget`: limits, the latest window, level, history) and
exported (bpfleet_program_budget_breaches_total, bpfleet_program_degraded_level,
bpfleet_program_tripped). Re-enabling: `reenable = "manual"` (default) waits for a deploy through
the admin API (PUT /programs/<name>) or a config reload, which re-apply the config as written
(undegraded); `reenable = "after"` also deploys it again `cooldown_seconds` after the trip.
Any deploy the breaker did not make itself (admin API, reload) resets the program's budget
state: level 0, not tripped.
"""
from __future__ import annotations

import logging
import threading
import time
from collections import deque
from dataclasses import dataclass, field, replace

from core import budget as budget_mod
from core.series import Family, labels
from exporter.slot import ProgramView
from exporter.supervisor import Supervisor

log = logging.getLogger("bpfleet.breaker")
HISTORY = 20


@dataclass
class _State:
    streak: budget_mod.Streak
    program: object = None          # the LoadedProgram last seen or deployed by us (identity)
    base: object = None             # ProgramConfig asked for before any degrade step
    level: int = 0                  # degrade steps taken
    breaches: int = 0
    trips: int = 0
    tripped_at: float | None = None         # monotonic
    tripped_wall: float | None = None
    prev: budget_mod.Reading | None = None
    verdict: budget_mod.Verdict | None = None
    budget: budget_mod.Budget | None = None
    source: str = ""                # where the budget came from: manifest, config, both
    degraded_to: dict | None = None
    note: str | None = None
    history: deque = field(default_factory=lambda: deque(maxlen=HISTORY))


class Breaker:
    def __init__(self, supervisor: Supervisor, get_config, clock=time.monotonic, wall=time.time):
        self.supervisor = supervisor
        self.get_config = get_config        # -> exporter.config.Config (read on every tick)
        self.clock, self.wall = clock, wall
        self.states: dict[str, _State] = {}
        self.stats_note: str | None = None  # set when bpf_stats are off: nothing is measured
        self._lock = threading.Lock()

    # ---- the thread ----
    def run(self, stop: threading.Event) -> None:
        """Tick every interval_seconds on a fixed schedule (a slow tick does not push the next)."""
        due = time.monotonic() + self.get_config().breaker.interval_seconds
        while not stop.wait(max(0.0, due - time.monotonic())):
            try:
                self.tick()
            except Exception:
                log.exception("circuit breaker")
            due = max(due + self.get_config().breaker.interval_seconds, time.monotonic())

    def tick(self) -> None:
        cfg = self.get_config().breaker
        if not cfg.enabled:
            return
        with self._lock:
            now = self.clock()
            views = self.supervisor.views(kernel_stats=True)
            for name, view in views.items():
                st = self.states.get(name)
                if st is None:
                    st = self.states[name] = _State(budget_mod.Streak(cfg.windows), base=view.wanted)
                    st.program = view.running
                st.streak.windows = cfg.windows
                self._observe(name, view, st, now, cfg)
            for gone in set(self.states) - set(views):
                del self.states[gone]

    def _observe(self, name, view: ProgramView, st: _State, now, cfg) -> None:
        prog = view.running
        if prog is not st.program:
            # Deployed (or unloaded) by someone else: the admin API or a config reload.
            if st.level or st.tripped_at is not None:
                self._record(st, "reset", "deployed again through the admin API or a config "
                             "reload: not degraded, not tripped")
                log.warning("circuit breaker: %s was deployed again; its budget state is reset", name)
            st.program, st.base, st.level, st.degraded_to = prog, view.wanted, 0, None
            st.tripped_at = st.tripped_wall = None
            st.prev, st.verdict = None, None
            st.streak.reset()
        if st.tripped_at is not None:
            if cfg.reenable == "after" and now - st.tripped_at >= cfg.cooldown_seconds:
                self._reenable(name, st, now)
            return
        if prog is None:
            return
        override = view.config.budget if view.config is not None else None
        manifest_budget = prog.plan.manifest.budget
        st.budget = budget_mod.effective(manifest_budget, override)
        st.source = "+".join(s for s, b in (("manifest", manifest_budget), ("config", override)) if b) or "none"
        reading = budget_mod.reading_of(view.kernel_stats, now)
        prev, st.prev = st.prev, reading
        if st.budget is None or prev is None:
            return
        w = budget_mod.window(prev, reading)
        if w is None:
            st.streak.reset()
            return
        v = st.verdict = budget_mod.judge(st.budget, w, cfg.min_events)
        if v.over:
            log.warning("circuit breaker: %s over budget (window %d of %d): %s",
                        name, st.streak.count + 1, cfg.windows, v.reason)
        if st.streak.feed(v):
            self._act(name, view, st, v, now)

    def _act(self, name, view: ProgramView, st: _State, v, now) -> None:
        prog = view.running
        st.breaches += 1
        b = st.budget
        values = b.degrade_values if b.degrade_knob else ()
        if values and b.degrade_knob not in {k.name for k in prog.plan.knobs}:
            st.note = f"degrade knob {b.degrade_knob!r} is not a knob of {prog.artifact.ref}"
            values = ()
        if st.level < len(values):
            value = values[st.level]
            base = st.base or view.wanted
            pc = replace(base, version=prog.artifact.version, knobs={**base.knobs, b.degrade_knob: value})
            error = self.supervisor.deploy(pc, expect=prog)
            if error is None:
                st.level += 1
                st.program, st.prev, st.verdict = self._running(name), None, None
                st.degraded_to = {b.degrade_knob: value}
                what = f"degraded to {b.degrade_knob}={value} (step {st.level} of {len(values)})"
                self._record(st, "degrade", f"{what}: {v.reason}")
                log.error("circuit breaker: %s %s: %s", name, what, v.reason)
                return
            self._record(st, "degrade-failed", f"could not set {b.degrade_knob}={value}: {error}")
            log.error("circuit breaker: could not degrade %s (%s); detaching it", name, error)
        if not self.supervisor.trip(name, f"over budget: {v.reason}", expect=prog):
            return   # deployed or unloaded by someone else meanwhile: the next tick sees it
        st.program, st.prev, st.trips = None, None, st.trips + 1
        st.tripped_at, st.tripped_wall = now, self.wall()
        self._record(st, "trip", f"detached and unloaded: {v.reason}")

    def _reenable(self, name, st: _State, now) -> None:
        pc = st.base
        error = self.supervisor.deploy(pc, expect=None)
        if error is not None:
            st.tripped_at = now   # try again after another cooldown
            self._record(st, "reenable-failed", error)
            log.error("circuit breaker: could not re-enable %s after the cooldown: %s", name, error)
            return
        st.program = self._running(name)
        st.level, st.degraded_to, st.tripped_at, st.tripped_wall, st.prev = 0, None, None, None, None
        st.streak.reset()
        self._record(st, "reenable", "cooldown over: deployed again as configured")
        log.warning("circuit breaker: re-enabled %s after the cooldown", name)

    def _running(self, name: str):
        view = self.supervisor.view(name)
        return view.running if view else None

    def _record(self, st: _State, action: str, detail: str) -> None:
        st.history.append({"time": round(self.wall(), 3), "action": action, "detail": detail})

    # ---- reporting ----
    def status(self, name: str) -> dict | None:
        cfg = self.get_config().breaker
        with self._lock:
            st = self.states.get(name)
            if st is None:
                return None
            reenable_at = None
            if st.tripped_wall is not None and cfg.reenable == "after":
                reenable_at = round(st.tripped_wall + cfg.cooldown_seconds, 3)
            return {
                "limits": st.budget.as_dict() if st.budget else None,
                "source": st.source,
                "enforced": cfg.enabled and st.budget is not None,
                "note": self.stats_note or st.note,
                "window": st.verdict.as_dict() if st.verdict else None,
                "over_windows": st.streak.count,
                "windows_to_breach": cfg.windows,
                "breaches": st.breaches,
                "degraded_level": st.level,
                "degraded_to": st.degraded_to,
                "tripped": st.tripped_at is not None,
                "trips": st.trips,
                "tripped_at": st.tripped_wall,
                "reenable": cfg.reenable,
                "reenable_at": reenable_at,
                "history": list(st.history),
            }

    def families(self) -> list[Family]:
        breaches, level, tripped = [], [], []
        with self._lock:
            for name, st in sorted(self.states.items()):
                lbl = labels(program=name)
                breaches.append(("", lbl, st.breaches))
                level.append(("", lbl, st.level))
                tripped.append(("", lbl, 1 if st.tripped_at is not None else 0))
        return [
            Family("bpfleet_program_budget_breaches_total", "counter",
                   "Budget breaches (consecutive over-budget windows) the circuit breaker acted on", breaches),
            Family("bpfleet_program_degraded_level", "gauge",
                   "Degrade steps the circuit breaker took (0: as configured)", level),
            Family("bpfleet_program_tripped", "gauge",
                   "1 while the circuit breaker keeps the program detached", tripped),
        ]
