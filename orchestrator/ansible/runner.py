"""The Ansible boundary: the only module that imports ansible_runner or runs an ansible CLI
(tests/architecture/test_boundaries.py holds it to that).

One call runs one playbook against an explicit set of hosts, with explicit timeouts (the
library's defaults are none), streams events to a callback for live progress, can be cancelled,
and leaves its artifacts under `<private_data_dir>/artifacts/<ident>/` — an audit trail per step.

Per-host results come from the events, not from Ansible's own failure accounting: a host is ok
only if no task failed on it (rescued or not) and it stayed reachable. A playbook reports data
back by ending with a task named REPORT_TASK whose `msg` is that host's report.

Every run finds the host modules in playbooks/library/ and the code they share in
playbooks/module_utils/ (also for a playbook outside playbooks/, as the tests write).
"""
from __future__ import annotations

import os
import subprocess
import sys
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable

from core import resources
from core.extras import require

require("control", "Running Ansible", "ansible_runner", "ansible")
import ansible_runner  # noqa: E402  (after the extra check)

PLAYBOOKS = resources.playbooks_dir()
REPORT_TASK = "bpfleet report"
# Where Ansible finds the bpfleet modules, the code they share and the roles.
ANSIBLE_PATHS = {"ANSIBLE_LIBRARY": str(PLAYBOOKS / "library"),
                 "ANSIBLE_MODULE_UTILS": str(PLAYBOOKS / "module_utils"),
                 "ANSIBLE_ROLES_PATH": str(PLAYBOOKS / "roles")}


@dataclass
class HostResult:
    host: str
    ok: bool = True
    unreachable: bool = False
    failed_task: str | None = None
    message: str = ""
    report: object = None        # the REPORT_TASK's msg for this host, if it ran
    changed: list = field(default_factory=list)   # tasks that changed (or would, in check mode)


@dataclass
class RunResult:
    ident: str
    status: str                  # ansible-runner's: "successful", "failed", "timeout", "canceled"
    rc: int | None
    hosts: dict[str, HostResult] = field(default_factory=dict)
    artifacts: str = ""

    @property
    def ok_hosts(self) -> list[str]:
        return [h for h, r in self.hosts.items() if r.ok]

    @property
    def failed_hosts(self) -> list[str]:
        return [h for h, r in self.hosts.items() if not r.ok]


@dataclass(frozen=True)
class Timeouts:
    job: int = 900               # the whole playbook run
    task: int = 300              # any one task (ANSIBLE_TASK_TIMEOUT)
    connect: int = 60            # SSH connection (ANSIBLE_TIMEOUT); TCG VMs take seconds


def _collect(result: RunResult, event: dict) -> None:
    kind, data = event.get("event", ""), event.get("event_data", {})
    host = data.get("host")
    if not host:
        return
    r = result.hosts.setdefault(host, HostResult(host))
    res = data.get("res") or {}
    if kind == "runner_on_unreachable":
        r.ok, r.unreachable = False, True
        r.failed_task, r.message = data.get("task"), str(res.get("msg", "unreachable"))
    elif kind == "runner_on_failed" and not data.get("ignore_errors"):
        r.ok = False
        r.failed_task, r.message = data.get("task"), str(res.get("msg") or res.get("stderr") or "failed")
    elif kind == "runner_on_ok" and data.get("task") == REPORT_TASK:
        r.report = res.get("msg")
    elif kind == "runner_on_ok" and res.get("changed"):
        r.changed.append(data.get("task"))


def run_playbook(playbook: str, inventory: str, hosts: list[str], extravars: dict, ident: str,
                 private_data_dir: str, on_event: Callable[[dict], None] | None = None,
                 cancel: Callable[[], bool] | None = None, forks: int = 10,
                 timeouts: Timeouts = Timeouts(), check: bool = False) -> RunResult:
    """Run playbooks/<playbook> on exactly `hosts` (every host named gets a result)."""
    result = RunResult(ident, "unstarted", None, {h: HostResult(h) for h in hosts})

    def handler(event: dict) -> bool:
        _collect(result, event)
        if on_event:
            on_event(event)
        return True   # keep the event in the artifacts: the audit trail

    os.makedirs(private_data_dir, exist_ok=True)
    runner = ansible_runner.run(
        private_data_dir=private_data_dir, ident=ident, playbook=str(PLAYBOOKS / playbook),
        inventory=os.path.abspath(inventory), limit=",".join(hosts), extravars=extravars,
        forks=forks, timeout=timeouts.job, quiet=True, event_handler=handler,
        cancel_callback=cancel or (lambda: False), cmdline="--check" if check else None,
        envvars={"PATH": _path(), **ANSIBLE_PATHS,
                 "ANSIBLE_TASK_TIMEOUT": str(timeouts.task), "ANSIBLE_TIMEOUT": str(timeouts.connect),
                 "ANSIBLE_HOST_KEY_CHECKING": "False", "ANSIBLE_RETRY_FILES_ENABLED": "False",
                 "ANSIBLE_PIPELINING": "True"},
        settings={"suppress_ansible_output": True},
        # Otherwise the first run's extravars, envvars and cmdline (--check!) are written to
        # <private_data_dir>/env/ and silently reused by every later run that shares the dir.
        suppress_env_files=True)
    result.status, result.rc = runner.status, runner.rc
    result.artifacts = str(Path(private_data_dir) / "artifacts" / ident)
    why = _run_failure(runner, result.artifacts)
    for r in result.hosts.values():  # no report, no success: whatever stopped it, it didn't finish
        if r.ok and r.report is None:
            r.ok, r.message = False, why or "never reached the report task (not in the inventory, or skipped)"
    return result


def _run_failure(runner, artifacts: str) -> str:
    """Why a whole run stopped early (timeout, cancel, ansible-playbook refusing to start)."""
    if runner.status in ("timeout", "canceled"):
        return f"run {runner.status} before this host reported"
    if runner.status == "failed" and runner.rc not in (0, 2, 4):  # 2/4: some hosts failed/unreachable
        try:
            tail = Path(artifacts, "stdout").read_text(errors="replace").strip().splitlines()[-3:]
        except OSError:
            tail = []
        return f"ansible-playbook exited {runner.rc}: {' '.join(tail) or 'no output'} (see {artifacts})"
    return ""


def inventory_hosts(inventory: str, pattern: str = "all") -> list[str]:
    """Hosts of an inventory matching an Ansible host pattern (`ansible --list-hosts`)."""
    ansible = Path(sys.executable).with_name("ansible")
    r = subprocess.run([str(ansible) if ansible.exists() else "ansible", pattern, "-i", inventory,
                        "--list-hosts"], capture_output=True, text=True, timeout=120,
                       stdin=subprocess.DEVNULL,
                       env={"ANSIBLE_DEPRECATION_WARNINGS": "False", "PATH": _path()})
    if r.returncode != 0:
        raise ValueError(f"inventory {inventory}: {(r.stderr or r.stdout).strip()}")
    lines = r.stdout.splitlines()
    return sorted(l.strip() for l in lines[1:] if l.strip()) if lines and "hosts (" in lines[0] else []


def _path() -> str:
    """PATH with the venv's bin first: its ansible-playbook, not another one."""
    return f"{Path(sys.executable).parent}:{os.environ.get('PATH', '/usr/bin:/bin')}"
