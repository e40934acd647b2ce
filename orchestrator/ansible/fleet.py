"""The `Fleet` of orchestrator/engine/fleet.py over Ansible: one playbook run (orchestrator/ansible/runner.py)
per operation per host set.

The rollout engine decides which hosts, when and how many; this only runs playbooks/*.yml on
exactly those hosts and turns each host's `bpfleet report` into HostFacts / Outcome /
Observation. Ansible's own batching (serial, max_fail_percentage) is never used. Every run has
an ident `<rollout>-<step>` (`…-facts`, `…-preflight-<host>`, `…-w<wave>-upgrade`,
`…-w<wave>-observe`, `…-rollback-<host>`), so `<workdir>/artifacts/` is the audit trail.
"""
from __future__ import annotations

import re
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable

from orchestrator import packaging
from orchestrator.engine.fleet import Artifact, HostFacts, Outcome
from orchestrator.engine.gates import Observation
from orchestrator.ansible.runner import RunResult, Timeouts, run_playbook

HOST_KEYS_DIR = "/etc/bpfleet/keys"   # where the bpfleet_exporter role puts trusted keys


@dataclass
class RunStats:
    """Where the time went: Ansible's runs (for the orchestrator's own overhead)."""
    runs: list = field(default_factory=list)      # (ident, seconds, hosts)

    @property
    def ansible_seconds(self) -> float:
        return sum(s for _, s, _ in self.runs)


class AnsibleFleet:
    def __init__(self, inventory: str, registry: str, workdir: str, forks: int = 10,
                 timeouts: Timeouts = Timeouts(), cache: Path | None = None,
                 knobs: dict | None = None, trusted_keys: tuple = (),
                 on_event: Callable[[dict], None] | None = None,
                 cancel: Callable[[], bool] | None = None):
        self.inventory, self.registry, self.workdir = inventory, registry, Path(workdir)
        self.forks, self.timeouts = forks, timeouts
        self.cache = cache or packaging.default_cache()
        self.knobs = dict(knobs or {})
        self.trusted_keys = tuple(trusted_keys)     # control-machine paths of public keys
        self.on_event, self.cancel = on_event, cancel
        self.stats = RunStats()
        self.rollout, self.phase = "adhoc", ""
        self._used: set[str] = set()
        self._archives: dict = {}
        self._lock = threading.Lock()

    # ---- bookkeeping ----
    def track(self, event: dict) -> None:
        """Follow the engine's progress events, to name each run after the step it serves."""
        self.rollout = event.get("rollout") or self.rollout
        kind = event.get("kind")
        if kind == "wave_started":
            self.phase = f"w{event['wave']}"
        elif kind in ("abort", "host_rolling_back"):
            self.phase = "rollback"

    def _ident(self, step: str) -> str:
        base = re.sub(r"[^A-Za-z0-9_.-]", "_", f"{self.rollout}-{step}")
        ident, n = base, 1
        while ident in self._used or (self.workdir / "artifacts" / ident).exists():
            n += 1
            ident = f"{base}-{n}"
        self._used.add(ident)
        return ident

    def playbook(self, playbook: str, hosts: list[str], extravars: dict, step: str,
                 check: bool = False) -> RunResult:
        """Run one playbook (of playbooks/) on these hosts, as journal step `step`."""
        ident = self._ident(step)
        t0 = time.monotonic()
        try:
            return run_playbook(playbook, self.inventory, hosts, extravars, ident, str(self.workdir),
                                on_event=self._event(ident), cancel=self.cancel, forks=self.forks,
                                timeouts=self.timeouts, check=check)
        finally:
            self.stats.runs.append((ident, time.monotonic() - t0, len(hosts)))

    def _event(self, ident: str):
        if self.on_event is None:
            return None

        def forward(e: dict) -> None:
            kind, data = e.get("event", ""), e.get("event_data", {})
            if kind in ("runner_on_ok", "runner_on_failed", "runner_on_unreachable",
                        "runner_on_skipped") and data.get("host"):
                self.on_event({"kind": "task", "ident": ident, "host": data["host"],
                               "task": data.get("task"), "result": kind.removeprefix("runner_on_"),
                               "changed": bool((data.get("res") or {}).get("changed"))})
        return forward

    def _archive(self, artifact: Artifact) -> packaging.ArtifactArchive:
        key = (artifact.path, artifact.digest)
        with self._lock:
            if key not in self._archives:
                d = Path(artifact.path)
                a = packaging.artifact_archive(d.parent.parent, artifact.program, artifact.version,
                                               self.cache)
                if a.digest != artifact.digest:
                    raise ValueError(f"{artifact.program}@{artifact.version}: the registry has digest "
                                     f"{a.digest}, the rollout pinned {artifact.digest}")
                self._archives[key] = a
            return self._archives[key]

    def artifact_vars(self, artifact: Artifact) -> dict:
        a = self._archive(artifact)
        return {"bpfleet_artifact_name": a.name, "bpfleet_artifact_version": a.version,
                "bpfleet_artifact_digest": a.digest, "bpfleet_artifact_archive_b64": a.archive_b64,
                "bpfleet_program_knobs": self.knobs}

    # ---- Fleet ----
    def host_reports(self, hosts: list[str], program: str | None = None, step: str = "facts") -> RunResult:
        """facts.yml: kernel, BTF, CPUs and what the exporter runs, per host."""
        return self.playbook("facts.yml", hosts, {"bpfleet_program_name": program or ""}, step)

    def facts(self, hosts: list[str], program: str) -> dict[str, HostFacts]:
        out = {}
        for h, r in self.host_reports(hosts, program).hosts.items():
            rep = r.report if isinstance(r.report, dict) else None
            if not r.ok or rep is None:
                out[h] = HostFacts(h, False, error=_why(r))
            elif not (rep.get("exporter") or {}).get("up"):
                out[h] = HostFacts(h, False, f"{rep['release']} {rep['build']}", bool(rep.get("btf")),
                                   error=f"no exporter answers: {(rep.get('exporter') or {}).get('error')}"
                                   " (bpfleet fleet install)")
            else:
                prog = rep.get("program") or {}
                out[h] = HostFacts(h, True, f"{rep['release']} {rep['build']}", bool(rep.get("btf")),
                                   prog.get("version"))
        return out

    def preflight(self, host: str, artifact: Artifact) -> Outcome:
        args = [f"--knob={k}={str(v).lower() if isinstance(v, bool) else v}" for k, v in self.knobs.items()]
        args += [f"--trusted-key={HOST_KEYS_DIR}/{Path(k).name}" for k in self.trusted_keys]
        r = self.playbook("preflight.yml", [host], {**self.artifact_vars(artifact), "bpfleet_verify_args": args},
                      f"preflight-{host}").hosts[host]
        rep = r.report if isinstance(r.report, dict) else None
        if not r.ok or rep is None:
            return Outcome(host, False, _why(r), unreachable=r.unreachable)
        if rep.get("ok"):
            return Outcome(host, True)
        tail = (rep.get("verifier_log") or "").strip().splitlines()[-3:]
        return Outcome(host, False, (rep.get("error") or "refused") + (f" | verifier: {' / '.join(tail)}" if tail else ""))

    def upgrade(self, hosts: list[str], artifact: Artifact) -> dict[str, Outcome]:
        run = self.playbook("upgrade.yml", hosts, self.artifact_vars(artifact), f"{self.phase or 'w'}-upgrade")
        out = {}
        for h, r in run.hosts.items():
            rep = r.report if isinstance(r.report, dict) else None
            if not r.ok or rep is None:
                out[h] = Outcome(h, False, _why(r), unreachable=r.unreachable)
            elif (rep.get("version"), rep.get("state"), rep.get("digest")) != (artifact.version, "attached", artifact.digest):
                out[h] = Outcome(h, False, f"runs {rep.get('version')} ({rep.get('state')}, digest "
                                 f"{(rep.get('digest') or '?')[:12]}) after the upgrade: {rep.get('error') or 'no error given'}")
            else:
                out[h] = Outcome(h, True)
        return out

    def observe(self, hosts: list[str], program: str) -> dict[str, Observation]:
        if not hosts:
            return {}
        run = self.playbook("status.yml", hosts, {"bpfleet_program_name": program}, f"{self.phase or 'w'}-observe")
        return {h: observation(h, r.report if r.ok else None) for h, r in run.hosts.items()}

    def rollback(self, hosts: list[str], program: str, versions: dict[str, str | None]) -> dict[str, Outcome]:
        step = f"rollback-{hosts[0]}" if len(hosts) == 1 else "rollback"
        run = self.playbook("rollback.yml", hosts, {"bpfleet_program_name": program,
                                                "bpfleet_rollback_versions": {h: versions.get(h) for h in hosts}}, step)
        out = {}
        for h, r in run.hosts.items():
            rep = r.report if isinstance(r.report, dict) else None
            if not r.ok or rep is None:
                out[h] = Outcome(h, False, _why(r), unreachable=r.unreachable)
            elif rep.get("version") != versions.get(h):
                out[h] = Outcome(h, False, f"runs {rep.get('version')} after rollback, expected {versions.get(h)}: "
                                 f"{rep.get('error') or ''}")
            else:
                out[h] = Outcome(h, True)
        return out

    # ---- installing ----
    def install(self, hosts: list[str], wheelhouse: packaging.Wheelhouse, programs: list[Artifact] = (),
                environment: dict | None = None, check: bool = False, step: str = "install") -> RunResult:
        extravars = {**wheelhouse.role_vars(), "bpfleet_exporter_trusted_keys": list(self.trusted_keys),
                     "bpfleet_exporter_environment": dict(environment or {}),
                     "bpfleet_install_programs": [
                         {"name": a.program, "version": a.version, "digest": a.digest,
                          "archive_b64": self._archive(a).archive_b64, "knobs": self.knobs} for a in programs]}
        return self.playbook("install.yml", hosts, extravars, step, check=check)


def observation(host: str, rep) -> Observation:
    if not isinstance(rep, dict):
        return Observation(host, reachable=False)
    prog, exporter = rep.get("program") or {}, rep.get("exporter") or {}
    load, cpus = rep.get("load1"), rep.get("cpus") or 1
    return Observation(host, True, bool(exporter.get("up")), prog.get("version"), prog.get("state"),
                       prog.get("error"), int(prog.get("run_time_ns") or 0), int(prog.get("run_count") or 0),
                       None if load is None else float(load) / float(cpus),
                       f"{rep['release']} {rep['build']}" if rep.get("release") else None)


def _why(r) -> str:
    where = f"{r.failed_task}: " if r.failed_task else ""
    return ("unreachable: " if r.unreachable else "") + where + (r.message or "failed")
