"""Mitigations across the fleet (docs/mitigations.md#across-the-fleet), the pure part: one
host's answer (HostMitigation), whether it counts as done (outcome), the fleet-wide totals that
`promote` shows. Apply and promote go through the rollout engine (orchestrator/engine/rollout.py)
with orchestrator/ansible/mitigations.py's MitigationFleet as the `Fleet`.
"""
from __future__ import annotations

from dataclasses import dataclass

from orchestrator.engine.fleet import Outcome

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


def outcome(s: HostMitigation | None, host: str, mode: str | None) -> Outcome:
    if s is None or not s.reachable:
        return Outcome(host, False, s.error if s else "no result", unreachable=bool(s and "unreachable" in s.error))
    if s.state in RUNNING and (mode is None or s.mode == mode):
        return Outcome(host, True)
    return Outcome(host, False, f"{s.state}: {s.reason or 'no reason given'}")


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
