"""One e2e lab with exporters on it, brought up once per test module and put back into a known
state before every test: each host reachable, running sysprobe@1.0.0 attached, and a journal of
the test's own. Booting and installing are slow, putting a program version back is not, so the
reset is one ad-hoc Ansible run of the bpfleet_program module (the one rollouts use) and the
full repair (lab up, fleet install) runs only when a host is down or the last test failed."""
from __future__ import annotations

import json
import os
import subprocess
import sys
import time
from pathlib import Path

from e2ekit import CRASHES, PROGRAM, REPORT, ROOT, LabSpec, bpfleet
from orchestrator.ansible.runner import ANSIBLE_PATHS   # the modules and their module_utils

BASELINE = "1.0.0"    # what every test starts from
# The crash fault is a test-only exporter plugin (tests/faults/bpfleet_fault_crash.py), copied
# to every host (a netns host's /opt/bpfleet is its own) before `fleet install` names it.
FAULT_PLUGIN = ROOT / "tests" / "faults" / "bpfleet_fault_crash.py"
PLUGIN_DIR = "/opt/bpfleet/test-plugins"


class LabFleet:
    def __init__(self, spec: LabSpec, registry: str, digests: dict[str, str], workdir: Path):
        self.spec, self.registry, self.digests = spec, registry, digests
        self.setup_journal = str(workdir / "setup.db")    # the installs' (Ansible runs beside it)
        self.inventory, self.hosts, self.journal = "", {}, ""
        self.dirty = True               # until a reset has checked every host
        self.resets, self.repairs = [], []

    def cli(self, *args: str, timeout: float = 900) -> subprocess.CompletedProcess:
        return bpfleet(*args, lab=self.spec, timeout=timeout)

    def lab(self, *args: str, check: bool = True) -> subprocess.CompletedProcess:
        p = self.cli("lab", *args)
        if check and p.returncode != 0:
            raise RuntimeError(f"bpfleet lab {' '.join(args)} ({self.spec.env['BPFLEET_LAB_PREFIX']}): "
                               f"exit {p.returncode}\n{p.stdout[-3000:]}\n{p.stderr[-3000:]}")
        return p

    @property
    def install(self) -> list[str]:
        """`fleet install` as the tests first ran it: the baseline program and the crash fault."""
        return ["fleet", "install", "-i", self.inventory, "--registry", self.registry, "--journal",
                self.setup_journal, "--program", f"{PROGRAM}@{BASELINE}", "--json",
                "--env", f"PYTHONPATH={PLUGIN_DIR}", "--env", f"BPFLEET_EXPORTER_PLUGINS={FAULT_PLUGIN.stem}",
                "--env", f"BPFLEET_FAULT_CRASH_ON_LOAD={PROGRAM}@{CRASHES}"]

    def up(self) -> None:
        t = time.monotonic()
        self.lab("down")
        shape = [str(self.spec.hosts)] + (["--vms", str(self.spec.vms)] if self.spec.vms else [])
        lab = json.loads(self.lab("up", *shape, "--json").stdout)
        self.inventory, self.hosts = lab["inventory"], {h["name"]: h for h in lab["hosts"]}
        REPORT.append(f"{self.name}: lab up {' '.join(shape)}: {time.monotonic() - t:.1f} s")
        self._install(None)
        self.dirty = False      # just installed: the first reset only checks

    def down(self) -> None:
        t = time.monotonic()
        self.lab("down", check=False)
        REPORT.append(f"{self.name}: {len(self.resets)} resets {sum(self.resets):.1f} s, "
                      f"{len(self.repairs)} repairs {sum(self.repairs):.1f} s; lab down "
                      f"{time.monotonic() - t:.1f} s")

    @property
    def name(self) -> str:
        return self.spec.env["BPFLEET_LAB_PREFIX"]

    def _install(self, limit: list[str] | None) -> None:
        t = time.monotonic()
        self._push_fault_plugin(limit)
        p = self.cli(*self.install, *(["--limit", ",".join(limit)] if limit else []))
        rows = json.loads(p.stdout) if p.stdout.strip().startswith("[") else []
        assert p.returncode == 0 and rows and all(r["ok"] and r["exporter"] for r in rows), \
            f"fleet install failed (exit {p.returncode}):\n{p.stdout[-3000:]}\n{p.stderr[-3000:]}"
        REPORT.append(f"{self.name}: fleet install on {len(rows)} host(s): {time.monotonic() - t:.1f} s")

    def _push_fault_plugin(self, limit: list[str] | None) -> None:
        """The crash fault plugin into PLUGIN_DIR on every host (one ad-hoc Ansible copy)."""
        args = {"src": str(FAULT_PLUGIN), "dest": f"{PLUGIN_DIR}/", "mode": "0644"}
        p = subprocess.run(
            [str(Path(sys.executable).with_name("ansible")), "all", "-i", self.inventory, "-o",
             *(["--limit", ",".join(limit)] if limit else []), "-m", "copy", "-a", json.dumps(args)],
            capture_output=True, text=True, timeout=600, stdin=subprocess.DEVNULL,
            env={**os.environ, "ANSIBLE_DEPRECATION_WARNINGS": "False"})
        assert p.returncode == 0, f"copying the fault plugin failed (exit {p.returncode}):\n{p.stdout[-3000:]}\n{p.stderr[-3000:]}"

    def reset(self, journal: str) -> None:
        """Every host up and on the baseline, attached, with its digest; a fresh journal."""
        t = time.monotonic()
        self.journal = journal
        p = self.lab("status", "--json", check=False)
        assert p.returncode in (0, 1), f"the lab is gone (exit {p.returncode}): {p.stdout}{p.stderr}"
        down = sorted(h["name"] for h in json.loads(p.stdout)["hosts"] if not h["alive"])
        if down or self.dirty:
            # a killed sshd (lab up starts the host again, without its exporter) or a failed test
            # that may have left anything behind: reinstall, which is idempotent where all is well
            self.lab("up", str(self.spec.hosts), *(["--vms", str(self.spec.vms)] if self.spec.vms else []))
            self._install(down if down and not self.dirty else None)
            self.repairs.append(time.monotonic() - t)
        self.dirty = True
        problems = self._put_baseline()
        assert not problems, "could not put the fleet back on the baseline:\n" + "\n".join(problems)
        self.dirty = False
        self.resets.append(time.monotonic() - t)

    def _put_baseline(self) -> list[str]:
        """bpfleet_program state=present on every host in one ad-hoc Ansible run. -> problems."""
        want = {"name": PROGRAM, "state": "present", "version": BASELINE, "digest": self.digests[BASELINE]}
        p = subprocess.run(
            [str(Path(sys.executable).with_name("ansible")), "all", "-i", self.inventory, "-o",
             "-m", "bpfleet_program", "-a", json.dumps(want)],
            capture_output=True, text=True, timeout=600, stdin=subprocess.DEVNULL,
            env={**os.environ, **ANSIBLE_PATHS, "ANSIBLE_DEPRECATION_WARNINGS": "False"})
        want_running = (BASELINE, "attached", self.digests[BASELINE])
        seen, problems = set(), []
        for line in p.stdout.splitlines():      # -o: "HOST | STATUS => {json}", one per host
            host, _, rest = line.partition(" | ")
            status, _, body = rest.partition(" => ")
            if host not in self.hosts or not body.startswith("{"):
                continue
            seen.add(host)
            prog = json.loads(body).get("program") or {}
            if status not in ("SUCCESS", "CHANGED") or (prog.get("version"), prog.get("state"),
                                                        prog.get("digest")) != want_running:
                problems.append(f"{host}: {status} {body[:1500]}")
        problems += [f"{h}: no answer (exit {p.returncode}) {p.stderr[-1500:]}" for h in set(self.hosts) - seen]
        return problems

    # ---- what the fleet and the journal say, through the CLI ----
    def status(self) -> dict[str, dict]:
        p = self.cli("status", "-i", self.inventory, "--json")
        assert p.returncode in (0, 1), p.stderr
        return {r["host"]: r for r in json.loads(p.stdout)}

    def all_on(self, version: str, but: tuple = ()) -> dict[str, dict]:
        """Every host but `but` runs `version` attached, with its digest. -> the status."""
        status = self.status()
        got = {h: (r["programs"].get(PROGRAM) or {}) for h, r in status.items() if h not in but}
        assert {h: (p.get("version"), p.get("state"), p.get("digest")) for h, p in got.items()} == \
            {h: (version, "attached", self.digests[version]) for h in self.hosts if h not in but}, status
        return status

    def history(self, rid: str | None = None):
        p = self.cli("history", *([rid] if rid else []), "--journal", self.journal, "--json")
        assert p.returncode == 0, p.stderr
        return json.loads(p.stdout)

    def journal_shows(self, *rollouts: tuple[str, str]) -> None:
        """The test's own journal holds exactly these (version, state), oldest first."""
        assert [(r["version"], r["state"]) for r in reversed(self.history())] == list(rollouts)

    def rollout_args(self, version: str, *args: str) -> list[str]:
        return ["rollout", f"{PROGRAM}@{version}", "-i", self.inventory, "--registry", self.registry,
                "--journal", self.journal, "--bake", "3", "--json", *args]
