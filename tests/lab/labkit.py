"""Helpers for the lab tests (a module of its own: every tests/ dir has a conftest.py)."""
from __future__ import annotations

import json
import os
import re
import subprocess
import sys
import time
from pathlib import Path

REPORT: list[str] = []
TEST_LAB = {
    "BPFLEET_LAB_DIR": "/var/lib/bpfleet-lab-test",
    "BPFLEET_LAB_PREFIX": "bpfltest",
    "BPFLEET_LAB_SUBNET": "10.213.200.0/24",
    "BPFLEET_LAB_PORT_BASE": "42500",
}
VENV_BIN = Path(sys.executable).parent


def timed_up(cli, *args: str) -> tuple[dict, float]:
    cli("down")
    t = time.monotonic()
    p = cli("up", *args, "--json")
    return json.loads(p.stdout), time.monotonic() - t


def ssh(host: dict, command: str, timeout: float = 120) -> str:
    p = subprocess.run(host["ssh"].split() + ["--", command], capture_output=True, text=True,
                       timeout=timeout, stdin=subprocess.DEVNULL)
    assert p.returncode == 0, f"ssh {host['name']} {command!r}: exit {p.returncode}: {p.stderr}"
    return p.stdout


def ansible_ping(inventory: str) -> dict[str, str]:
    """`ansible -i INVENTORY all -m ping`: {host: SUCCESS|UNREACHABLE|FAILED...}."""
    p = subprocess.run([str(VENV_BIN / "ansible"), "-i", inventory, "all", "-m", "ping",
                        "-f", "10"], capture_output=True, text=True, timeout=600,
                       env={**os.environ, "ANSIBLE_DEPRECATION_WARNINGS": "False"})
    result = dict(re.findall(r"^(\S+) \| (\w+)", p.stdout, re.M))
    assert result, f"no host results from ansible (exit {p.returncode}):\n{p.stdout}\n{p.stderr}"
    return result


def leftovers(state_dir: str, prefix: str) -> dict:
    """Anything of the test lab still alive on this machine."""
    netns = [l.split()[0] for l in subprocess.run(["ip", "netns", "list"], capture_output=True,
             text=True).stdout.splitlines() if l.startswith(prefix + "-")]
    links = [l["ifname"] for l in json.loads(subprocess.run(
        ["ip", "-j", "link", "show"], capture_output=True, text=True).stdout)
        if l["ifname"].startswith(prefix + "-")]
    procs = []
    for d in Path("/proc").iterdir():
        try:
            if not d.name.isdigit() or (d / "stat").read_text().rsplit(")", 1)[1].split()[0] == "Z":
                continue
            argv = (d / "cmdline").read_bytes().replace(b"\0", b" ").decode(errors="replace")
        except (OSError, IndexError):
            continue
        if state_dir in argv:
            procs.append(f"{d.name} {argv.strip()}")
    mounts = [l for l in Path("/proc/self/mountinfo").read_text().splitlines()
              if state_dir in l or f"/run/netns/{prefix}-" in l]
    hosts = Path(state_dir, "hosts")
    files = sorted(str(p) for p in hosts.iterdir()) if hosts.exists() else []
    left = {"netns": netns, "links": links, "processes": procs, "mounts": mounts,
            "host dirs": files}
    return {k: v for k, v in left.items() if v}
