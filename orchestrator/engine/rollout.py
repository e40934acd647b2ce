"""A rollout: preflight per kernel build, canary, gated waves, automatic rollback, resumable.

Every step is written to the journal before it is taken, so a rollout killed at any point can be
resumed (`resume`) or undone (`rollback`) from the journal alone. The hosts are reached through
a `Fleet` (orchestrator/engine/fleet.py); this module decides, the fleet acts.
"""
from __future__ import annotations

import time
from dataclasses import asdict, dataclass, replace
from typing import Callable

from orchestrator.engine import gates, journal as J
from orchestrator.engine.fleet import Artifact, Fleet
from orchestrator.engine.gates import Observation
from orchestrator.engine.waves import DEFAULT_STEPS, Host, plan_waves

SUCCEEDED, FAILED, ROLLED_BACK, NEEDS_ATTENTION = "succeeded", "failed", "rolled_back", "needs_attention"
# Baseline hosts observed per wave: the first of the hosts still to come (interleaved over kernel
# builds). Watching all of them made every wave's two observations O(fleet): at 50 lab hosts
# they were two thirds of a rollout's time (docs/performance.md#rollouts).
BASELINE_SAMPLE = 5
EXIT_CODES = {SUCCEEDED: 0, FAILED: 1, ROLLED_BACK: 3, NEEDS_ATTENTION: 4}


@dataclass(frozen=True)
class Options:
    steps: tuple = DEFAULT_STEPS
    bake_seconds: float = 30.0
    max_failures: int = 0            # hosts that may fail across the whole rollout (unreachable count)
    incompatible: str = "fail"       # a kernel build the new version can't load on: "fail" or "skip"
    budget_ns: float | None = None   # kernel cost per event the program may take
    canary: bool = True


class Abort(Exception):
    pass


class Rollouts:
    def __init__(self, journal: J.Journal, fleet: Fleet, progress: Callable[[dict], None] = lambda e: None,
                 sleep: Callable[[float], None] = time.sleep):
        self.journal, self.fleet, self.progress, self.sleep = journal, fleet, progress, sleep

    def _say(self, rid: str, kind: str, wave: int | None = None, host: str | None = None, **detail) -> None:
        self.journal.event(rid, kind, detail, wave=wave, host=host)
        self.progress({"rollout": rid, "kind": kind, "wave": wave, "host": host, **detail})

    # ---- start ----
    def start(self, artifact: Artifact, inventory: str, hosts: list[str], options: Options) -> tuple[str, str]:
        rid = self.journal.start(artifact.program, artifact.version, artifact.digest, inventory, [],
                                 asdict(options) | {"artifact": asdict(artifact)})
        try:
            waves = self._prepare(rid, artifact, hosts, options)
        except Abort as e:
            self.journal.set_state(rid, J.FAILED, f"nothing changed: {e}")
            return rid, FAILED
        self.journal.set_plan(rid, [{"index": w.index, "kind": w.kind, "hosts": list(w.hosts)} for w in waves])
        return rid, self._run(rid)

    def _prepare(self, rid: str, artifact: Artifact, hosts: list[str], o: Options) -> list:
        facts = self.fleet.facts(hosts, artifact.program)
        usable = []
        for h in hosts:
            f = facts.get(h)
            if f is None or not f.reachable:
                self._fail_host(rid, h, None, f"unreachable: {f.error if f else 'no answer'}", o)
            elif not f.btf:
                self._incompatible(rid, h, "the kernel has no BTF (/sys/kernel/btf/vmlinux)", o)
            else:
                self.journal.remember_previous(rid, h, f.running)
                usable.append(Host(h, f.kernel))
        builds: dict[str, list[str]] = {}
        for h in usable:
            builds.setdefault(h.kernel, []).append(h.name)
        for kernel, names in builds.items():   # before anything is attached anywhere
            self._say(rid, "preflight", host=names[0], kernel=kernel)
            out = self.fleet.preflight(names[0], artifact)
            if not out.ok:
                for h in names:
                    self._incompatible(rid, h, f"preflight on {names[0]} ({kernel}): {out.error}", o)
                usable = [u for u in usable if u.kernel != kernel]
        if not usable:
            raise Abort("no host can take this version")
        return plan_waves(usable, tuple(o.steps), o.canary)

    def _incompatible(self, rid: str, host: str, why: str, o: Options) -> None:
        self._say(rid, "host_incompatible", host=host, error=why)
        if o.incompatible == "fail":
            raise Abort(f"{host}: {why}")

    def _fail_host(self, rid: str, host: str, wave: int | None, why: str, o: Options) -> None:
        self._say(rid, "host_failed", wave, host, error=why)
        failures = sum(1 for s in self.journal.host_states(rid).values() if s == "failed")
        if failures > o.max_failures:
            raise Abort(f"{failures} host(s) failed, the budget is {o.max_failures}; last: {host}: {why}")

    # ---- waves ----
    def _run(self, rid: str) -> str:
        r = self.journal.get(rid)
        o, artifact = _options(r), Artifact(**r.options["artifact"])
        done = {e["wave"] for e in self.journal.events(rid) if e["kind"] == "wave_passed"}
        try:
            for wave in r.plan:
                if wave["index"] in done:
                    continue
                verdict = self._wave(rid, wave, artifact, o, r.plan)
                if verdict.result == gates.INCONCLUSIVE:
                    self.journal.set_state(rid, J.PAUSED, f"wave {wave['index']} inconclusive: resume or roll back")
                    return NEEDS_ATTENTION
                if verdict.result == gates.FAIL:
                    bad = [f"{c.name}: {c.detail} ({', '.join(c.hosts)})" for c in verdict.checks if c.result == gates.FAIL]
                    raise Abort(f"wave {wave['index']} failed its gate: {'; '.join(bad)}")
                self._say(rid, "wave_passed", wave["index"])
        except Abort as e:
            self._say(rid, "abort", error=str(e))
            return self.rollback(rid)
        self.journal.set_state(rid, J.SUCCEEDED, SUCCEEDED)
        return SUCCEEDED

    def _wave(self, rid: str, wave: dict, artifact: Artifact, o: Options, plan: list) -> gates.Verdict:
        i, hosts = wave["index"], wave["hosts"]
        self._say(rid, "wave_started", i, hosts=hosts)
        for h in hosts:
            self._say(rid, "host_upgrading", i, h, version=artifact.version)
        outcomes = self.fleet.upgrade(hosts, artifact)
        ok = []
        for h in hosts:
            out = outcomes.get(h)
            if out is not None and out.ok:
                self._say(rid, "host_upgraded", i, h)
                ok.append(h)
            else:
                self._fail_host(rid, h, i, out.error if out else "no result", o)
        later = [h for w in plan if w["index"] > i for h in w["hosts"]][:BASELINE_SAMPLE]
        watched = ok + later
        before = self.fleet.observe(watched, artifact.program)
        self._say(rid, "bake", i, seconds=o.bake_seconds)
        self.sleep(o.bake_seconds)
        after = self.fleet.observe(watched, artifact.program)
        obs = [_delta(before.get(h), after.get(h), h) for h in ok]
        # Hosts still on the old version, and the wave's own hosts before the bake: the gate
        # compares each host within its kernel build, and a build may have no later host.
        baseline = [after[h] for h in later if h in after] + [before[h] for h in ok if h in before]
        verdict = gates.judge(obs, baseline, artifact.version, o.budget_ns)
        self._say(rid, "gate", i, **verdict.as_dict())
        return verdict

    # ---- rollback and resume ----
    def rollback(self, rid: str) -> str:
        r = self.journal.get(rid)
        self.journal.set_state(rid, J.ROLLING_BACK)
        touched = self.journal.touched(rid)
        targets = {h: r.previous.get(h) for h in touched}
        failed = []
        for h in reversed(touched):      # newest first
            self._say(rid, "host_rolling_back", host=h, version=targets[h])
            out = self.fleet.rollback([h], r.program, {h: targets[h]}).get(h)
            if out is None or not out.ok:
                failed.append(h)
                self._say(rid, "host_rollback_failed", host=h, error=out.error if out else "no result")
        seen = self.fleet.observe(touched, r.program) if touched else {}
        for h in touched:
            running = seen.get(h)
            if h not in failed and running and running.reachable and running.version == targets[h]:
                self._say(rid, "host_rolled_back", host=h, version=targets[h])
            elif h not in failed:
                failed.append(h)
                self._say(rid, "host_rollback_failed", host=h,
                          error=f"runs {running.version if running else '?'} after rollback, expected {targets[h]}")
        if failed:
            self.journal.set_state(rid, J.FAILED, f"rollback incomplete on {', '.join(failed)}")
            return FAILED
        self.journal.set_state(rid, J.ROLLED_BACK, ROLLED_BACK)
        return ROLLED_BACK

    def resume(self, rid: str) -> str:
        r = self.journal.get(rid)
        if r.state == J.ROLLING_BACK:
            return self.rollback(rid)
        if r.state not in (J.RUNNING, J.PAUSED):
            return {J.SUCCEEDED: SUCCEEDED, J.ROLLED_BACK: ROLLED_BACK}.get(r.state, FAILED)
        if not r.plan:   # killed before the plan was made: nothing was touched
            self.journal.set_state(rid, J.FAILED, "interrupted during preflight; nothing was changed")
            return FAILED
        self.journal.set_state(rid, J.RUNNING)
        self._say(rid, "resumed")
        return self._run(rid)


def _delta(before: Observation | None, after: Observation | None, host: str) -> Observation:
    """What happened during the bake: cumulative kernel stats after minus before."""
    if after is None or not after.reachable:
        return Observation(host, reachable=False)
    if before is None or not before.reachable or before.version != after.version:
        return after
    return replace(after, run_time_ns=after.run_time_ns - before.run_time_ns,
                   run_count=after.run_count - before.run_count)


def _options(r: J.Rollout) -> Options:
    fields = {k: v for k, v in r.options.items() if k in Options.__dataclass_fields__}
    fields["steps"] = tuple(fields.get("steps", DEFAULT_STEPS))
    return Options(**fields)
