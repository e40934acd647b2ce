"""Mitigations across the fleet (docs/mitigations.md#across-the-fleet): apply and promote go
through the rollout engine (orchestrator/engine/rollout.py: preflight per kernel build, canary, gated
waves, rollback of touched hosts); revoke is one fast wave to every host; status asks them all.

`MitigationFleet` is the `Fleet` the engine drives: its "upgrade" applies the mitigation (or
switches its mode), its "rollback" revokes it (or switches back to monitor). Hosts reached
through playbooks/mitigate.yml (module playbooks/library/bpfleet_mitigation.py).
"""
from __future__ import annotations

from dataclasses import dataclass

from orchestrator.engine.fleet import Artifact, HostFacts, Outcome
from orchestrator.engine.gates import Observation

PLAYBOOK = "mitigate.yml"
RUNNING = ("monitor", "enforce")


@dataclass(frozen=True)
class HostMitigation:
    """One host's answer: the exporter's view of the mitigation, or why there is none."""
    host: str
    reachable: bool
    state: str | None = None          # monitor, enforce, expired, retired, not_applicable, revoked, failed
    mode: str | None = None
    version: str | None = None
    reason: str | None = None
    would_block: float = 0
    blocked: float = 0
    expires_at: float | None = None
    kernel: str = ""
    error: str = ""

    def as_dict(self) -> dict:
        return dict(self.__dict__)


def host_mitigation(host: str, ok: bool, report, error: str) -> HostMitigation:
    if not ok or not isinstance(report, dict):
        return HostMitigation(host, False, error=error)
    m = report.get("mitigation") or {}
    d = m.get("decisions") or {}
    return HostMitigation(host, True, m.get("state"), m.get("mode"), m.get("version"), m.get("reason"),
                          float(d.get("would_block") or 0), float(d.get("blocked") or 0),
                          m.get("expires_at"), report.get("release", ""))


class MitigationFleet:
    """A `Fleet` (orchestrator/engine/fleet.py) whose upgrade is "apply with these settings" (apply)
    or "switch to this mode" (promote). Everything else is the AnsibleFleet's."""

    def __init__(self, fleet, name: str, settings: dict | None = None, mode: str | None = None,
                 undo_mode: str | None = None):
        self.fleet, self.name, self.settings, self.mode, self.undo_mode = fleet, name, settings, mode, undo_mode
        self.stats = fleet.stats

    def __getattr__(self, attr):            # track, on_event, rollout, ... of the AnsibleFleet
        return getattr(self.fleet, attr)

    def __setattr__(self, attr, value):
        if attr in ("on_event", "rollout", "track"):
            setattr(self.fleet, attr, value)
        else:
            object.__setattr__(self, attr, value)

    def run(self, hosts: list[str], state: str, step: str, artifact: Artifact | None = None,
            **extra) -> dict[str, HostMitigation]:
        extravars = {"bpfleet_mitigation_name": self.name, "bpfleet_mitigation_state": state, **extra}
        if artifact is not None:
            extravars.update(self.fleet._artifact_vars(artifact))
        run = self.fleet._run(PLAYBOOK, hosts, extravars, step)
        return {h: host_mitigation(h, r.ok, r.report, _why(r)) for h, r in run.hosts.items()}

    # ---- Fleet ----
    def facts(self, hosts: list[str], program: str) -> dict[str, HostFacts]:
        return self.fleet.facts(hosts, program)

    def preflight(self, host: str, artifact: Artifact) -> Outcome:
        if self.settings is None:           # promote: the program runs there already
            return Outcome(host, True)
        return self.fleet.preflight(host, artifact)

    def upgrade(self, hosts: list[str], artifact: Artifact) -> dict[str, Outcome]:
        step = f"{self.fleet.phase or 'w'}-{'apply' if self.settings is not None else 'mode'}"
        if self.settings is not None:
            seen = self.run(hosts, "present", step, artifact, bpfleet_mitigation_settings=self.settings)
        else:
            seen = self.run(hosts, "mode", step, bpfleet_mitigation_mode=self.mode)
        want = self.mode or self.settings.get("mode")
        return {h: _outcome(seen.get(h), h, want) for h in hosts}

    def observe(self, hosts: list[str], program: str) -> dict[str, Observation]:
        return self.fleet.observe(hosts, program)

    def rollback(self, hosts: list[str], program: str, versions: dict) -> dict[str, Outcome]:
        """apply: revoke where it was applied; promote: back to monitor."""
        if self.undo_mode:
            seen = self.run(hosts, "mode", "rollback", bpfleet_mitigation_mode=self.undo_mode)
            return {h: _outcome(seen.get(h), h, self.undo_mode) for h in hosts}
        seen = self.run(hosts, "absent", "rollback")
        return {h: Outcome(h, bool(s and s.reachable), "" if s and s.reachable else (s.error if s else "no result"))
                for h in hosts for s in [seen.get(h)]}


def _outcome(s: HostMitigation | None, host: str, mode: str | None) -> Outcome:
    if s is None or not s.reachable:
        return Outcome(host, False, s.error if s else "no result", unreachable=bool(s and "unreachable" in s.error))
    if s.state in RUNNING and (mode is None or s.mode == mode):
        return Outcome(host, True)
    return Outcome(host, False, f"{s.state}: {s.reason or 'no reason given'}")


def _why(r) -> str:
    where = f"{r.failed_task}: " if r.failed_task else ""
    return ("unreachable: " if r.unreachable else "") + where + (r.message or "failed")


def totals(rows: dict[str, HostMitigation]) -> dict:
    """Fleet-wide counts for `promote` to show before it enforces."""
    reachable = [r for r in rows.values() if r.reachable]
    return {"hosts": len(rows), "reachable": len(reachable),
            "running": sum(r.state in RUNNING for r in reachable),
            "monitor": sum(r.state == "monitor" for r in reachable),
            "would_block": sum(r.would_block for r in reachable),
            "blocked": sum(r.blocked for r in reachable),
            "not_running": {r.host: f"{r.state}: {r.reason}" for r in reachable if r.state not in RUNNING},
            "unreachable": {r.host: r.error for r in rows.values() if not r.reachable}}
