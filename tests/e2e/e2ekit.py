"""Helpers for the rollout e2e tests: their labs, the sysprobe variants, the CLI, what the
fleet and the journal say."""
from __future__ import annotations

import json
import os
import shutil
import signal
import subprocess
import sys
import time
from dataclasses import dataclass
from pathlib import Path

HERE = Path(__file__).resolve().parent
ROOT = HERE.parent.parent
REPORT: list[str] = []


@dataclass(frozen=True)
class LabSpec:
    """A lab of our own, beside a developer's (bpfleet) and the other tests' labs: its identity
    (env) and its shape (`lab up HOSTS --vms VMS`)."""
    env: dict
    hosts: int
    vms: int


# 4 netns hosts on this kernel + one Debian 6.1 VM: two kernel builds, so a two-host canary.
VM_LAB = LabSpec({"BPFLEET_LAB_DIR": "/var/lib/bpfleet-lab-e2e", "BPFLEET_LAB_PREFIX": "bpfle2e",
                  "BPFLEET_LAB_SUBNET": "10.213.210.0/24", "BPFLEET_LAB_PORT_BASE": "42700"}, 5, 1)
# 4 netns hosts and no VM: the rollout paths that must stay tested when no VM boots.
NETNS_LAB = LabSpec({"BPFLEET_LAB_DIR": "/var/lib/bpfleet-lab-e2n", "BPFLEET_LAB_PREFIX": "bpfle2n",
                     "BPFLEET_LAB_SUBNET": "10.213.190.0/24", "BPFLEET_LAB_PORT_BASE": "43700"}, 4, 0)
PROGRAM = "sysprobe"
# version -> variant (tests/e2e/programs/sysprobe/sysprobe.bpf.c explains them)
VERSIONS = {
    "1.0.0": "plain",       # what every host starts with (fleet install --program)
    "1.1.0": "plain",       # the good version
    "1.2.0": "newkernel",   # refused by 6.1's verifier, fine on this kernel
    "1.3.0": "costly",      # over any sane budget
    "1.4.0": "plain",       # the exporter crashes loading it (tests/faults/bpfleet_fault_crash.py)
    "1.5.0": "plain",       # killed mid-rollout, then resumed
    "1.6.0": "plain",       # killed mid-rollout, then rolled back
    "1.7.0": "plain",       # with an unreachable host
}
CRASHES = "1.4.0"
COSTLY_LOOPS = 400


def build_variants(registry: Path, work: Path) -> dict[str, str]:
    """Build every version of sysprobe into `registry`. -> version -> digest."""
    src = HERE / "programs" / PROGRAM
    digests = {}
    for version, variant in VERSIONS.items():
        d = work / version / PROGRAM
        d.mkdir(parents=True, exist_ok=True)
        shutil.copy(src / f"{PROGRAM}.bpf.c", d)
        (d / "manifest.toml").write_text((src / "manifest.toml.in").read_text().format(
            version=version, variant=variant))
        (d / "variant.h").write_text(
            f"#define VARIANT_NEWKERNEL {int(variant == 'newkernel')}\n"
            f"#define VARIANT_COSTLY {int(variant == 'costly')}\n"
            f"#define COSTLY_LOOPS {COSTLY_LOOPS}\n"
            f"#define VARIANT_SEED {version.replace('.', '')}ULL\n")
    p = bpfleet("programs", "build", "--json", "--registry", str(registry),
                *[str(work / v / PROGRAM) for v in VERSIONS])
    assert p.returncode == 0, p.stdout + p.stderr
    for r in json.loads(p.stdout):
        digests[r["program"].partition("@")[2]] = r["digest"]
    return digests


def bpfleet(*args: str, lab: LabSpec | None = None, timeout: float = 900) -> subprocess.CompletedProcess:
    """`bpfleet ARGS` as a user runs it, against `lab` (its env) when given."""
    return subprocess.run([sys.executable, "-m", "bpfleet.cli", *args], capture_output=True,
                          text=True, timeout=timeout, env={**os.environ, **(lab.env if lab else {})}, cwd=ROOT,
                          stdin=subprocess.DEVNULL)


def json_lines(text: str) -> list[dict]:
    out = []
    for line in text.splitlines():
        line = line.strip()
        if line.startswith("{"):
            out.append(json.loads(line))
    return out


def result_of(p: subprocess.CompletedProcess) -> dict:
    events = json_lines(p.stdout)
    assert events and events[-1]["kind"] == "result", f"no result line (exit {p.returncode}):\n{p.stdout[-3000:]}\n{p.stderr[-3000:]}"
    return events[-1]


def rollout_killed_after(args: list[str], kind: str, wave: int, lab: LabSpec,
                         timeout: float = 600) -> tuple[str, list[dict]]:
    """Run `bpfleet rollout ... --json`, SIGKILL it (and the Ansible it started) right after
    the first `kind` event of `wave`. -> (rollout id, the events it printed)."""
    p = subprocess.Popen([sys.executable, "-m", "bpfleet.cli", *args], stdout=subprocess.PIPE,
                         stderr=subprocess.PIPE, text=True, env={**os.environ, **lab.env}, cwd=ROOT,
                         stdin=subprocess.DEVNULL, start_new_session=True)
    events, deadline = [], time.monotonic() + timeout
    try:
        for line in p.stdout:
            if line.startswith("{"):
                events.append(json.loads(line))
                e = events[-1]
                if e.get("kind") == kind and e.get("wave") == wave:
                    os.killpg(p.pid, signal.SIGKILL)
                    break
            if time.monotonic() > deadline:
                break
        else:
            raise AssertionError(f"rollout ended before {kind} in wave {wave}: "
                                 f"{events[-3:]}\n{p.stderr.read()[-2000:]}")
    finally:
        if p.poll() is None:
            try:
                os.killpg(p.pid, signal.SIGKILL)
            except ProcessLookupError:
                pass
        p.wait(30)
        p.stdout.close()
        p.stderr.close()
    assert p.returncode == -signal.SIGKILL, p.returncode
    return events[-1]["rollout"], events


def kill_sshd(host: dict) -> list[int]:
    """Stop a netns host's sshd and its sessions (the host stays up: its exporter runs on)."""
    ns = host["name"]
    pids = subprocess.run(["ip", "netns", "pids", ns], capture_output=True, text=True).stdout.split()
    killed = []
    for pid in map(int, pids):
        try:
            comm = Path(f"/proc/{pid}/comm").read_text().strip()
        except OSError:
            continue
        if comm == "sshd":
            os.kill(pid, signal.SIGKILL)
            killed.append(pid)
    return killed
