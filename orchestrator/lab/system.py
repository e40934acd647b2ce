"""The lab's one shell to this machine: commands, processes, preconditions."""
from __future__ import annotations

import os
import shutil
import signal
import subprocess
import time
from pathlib import Path

from orchestrator.lab import debian_packages

# Debian package per tool, for "missing package" errors: scripts/debian-packages.txt, the list
# scripts/setup.sh installs from.
TOOL_PACKAGES = debian_packages.tool_packages(debian_packages.load())
NETNS_TOOLS = ["ip", "nsenter", "unshare", "/usr/sbin/sshd", "ssh", "ssh-keygen"]
VM_TOOLS = ["qemu-system-x86_64", "qemu-img", "debootstrap", "/bin/busybox", "mkfs.ext4",
            "depmod", "dpkg-deb", "apt-get", "zstd", "ssh", "ssh-keygen"]


class LabError(Exception):
    """A failure the user can act on; the message says what failed and where to look."""


def require_root() -> None:
    if os.geteuid() != 0:
        raise LabError("the lab creates network namespaces, mounts and VMs: run it as root")


def require_tools(tools: list[str]) -> None:
    missing = sorted({TOOL_PACKAGES.get(t, t) for t in tools
                      if not (os.access(t, os.X_OK) if t.startswith("/") else shutil.which(t))})
    if missing:
        raise LabError(f"missing Debian packages: {' '.join(missing)} "
                       f"(apt-get install {' '.join(missing)}, or run scripts/setup.sh)")


def run(*argv: str | os.PathLike, check: bool = True, timeout: float = 120,
        **kw) -> subprocess.CompletedProcess:
    """Run a command, capturing output; a failure raises LabError with its stderr."""
    argv = [str(a) for a in argv]
    try:
        p = subprocess.run(argv, capture_output=True, text=True, timeout=timeout, **kw)
    except FileNotFoundError:
        raise LabError(f"{argv[0]}: not installed ({TOOL_PACKAGES.get(argv[0], 'unknown package')})")
    except subprocess.TimeoutExpired:
        raise LabError(f"{' '.join(argv)}: no answer after {timeout:.0f} s") from None
    if check and p.returncode != 0:
        raise LabError(f"{' '.join(argv)}: exit {p.returncode}: {(p.stderr or p.stdout).strip()}")
    return p


def pid_alive(pid: int | None) -> bool:
    if not pid:
        return False
    try:
        with open(f"/proc/{pid}/stat") as f:
            return f.read().rsplit(")", 1)[1].split()[0] != "Z"
    except (FileNotFoundError, IndexError, ProcessLookupError):
        return False


def pid_cmdline(pid: int) -> list[str]:
    try:
        return Path(f"/proc/{pid}/cmdline").read_bytes().decode(errors="replace").split("\0")[:-1]
    except OSError:
        return []


def stop_pids(pids: list[int], timeout: float = 10.0) -> list[int]:
    """SIGTERM, wait up to `timeout`, then SIGKILL whatever is left. Returns pids still alive."""
    for sig, wait in ((signal.SIGTERM, timeout), (signal.SIGKILL, 5.0)):
        alive = [p for p in pids if pid_alive(p)]
        for p in alive:
            try:
                os.kill(p, sig)
            except ProcessLookupError:
                pass
        deadline = time.monotonic() + wait
        while alive and time.monotonic() < deadline:
            time.sleep(0.05)
            alive = [p for p in alive if pid_alive(p)]
        if not alive:
            return []
    return alive


def read_pidfile(path: Path) -> int | None:
    try:
        return int(Path(path).read_text().strip())
    except (OSError, ValueError):
        return None
