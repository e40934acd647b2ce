"""Mitigations through Ansible: the `Fleet` the rollout engine drives for `bpfleet mitigate
apply|promote` (docs/mitigations.md#across-the-fleet). Its "upgrade" applies the mitigation (or
switches its mode), its "rollback" revokes it (or switches back to monitor); hosts are reached
through playbooks/mitigate.yml (module playbooks/library/bpfleet_mitigation.py). Everything else
is the AnsibleFleet's."""
from __future__ import annotations

from orchestrator.engine.fleet import Artifact, HostFacts, Outcome
from orchestrator.engine.gates import Observation
from orchestrator.engine.mitigate import HostMitigation, host_mitigation, outcome

PLAYBOOK = "mitigate.yml"


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
            extravars.update(self.fleet.artifact_vars(artifact))
        run = self.fleet.playbook(PLAYBOOK, hosts, extravars, step)
        return {h: host_mitigation(h, r.ok, r.report, why(r)) for h, r in run.hosts.items()}

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
        return {h: outcome(seen.get(h), h, want) for h in hosts}

    def observe(self, hosts: list[str], program: str) -> dict[str, Observation]:
        return self.fleet.observe(hosts, program)

    def rollback(self, hosts: list[str], program: str, versions: dict) -> dict[str, Outcome]:
        """apply: revoke where it was applied; promote: back to monitor."""
        if self.undo_mode:
            seen = self.run(hosts, "mode", "rollback", bpfleet_mitigation_mode=self.undo_mode)
            return {h: outcome(seen.get(h), h, self.undo_mode) for h in hosts}
        seen = self.run(hosts, "absent", "rollback")
        return {h: Outcome(h, bool(s and s.reachable), "" if s and s.reachable else (s.error if s else "no result"))
                for h in hosts for s in [seen.get(h)]}


def why(r) -> str:
    where = f"{r.failed_task}: " if r.failed_task else ""
    return ("unreachable: " if r.unreachable else "") + where + (r.message or "failed")
