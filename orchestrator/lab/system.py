"""The lab's one shell to this machine: commands, processes, preconditions.

The only lab module that imports subprocess (tests/architecture/test_boundaries.py holds it to
that): the others build argv lists and hand them to run / run_logged / spawn."""
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


Completed = subprocess.CompletedProcess


def run(*argv: str | os.PathLike, check: bool = True, timeout: float = 120, what: str | None = None,
        text: bool = True, **kw) -> Completed:
    """Run a command, capturing output; a failure raises LabError with its stderr. `what` names
    the command in errors (default: its argv). No terminal: stdin is /dev/null unless `input`."""
    argv = [str(a) for a in argv]
    what = what or " ".join(argv)
    if "input" not in kw:
        kw.setdefault("stdin", subprocess.DEVNULL)
    try:
        p = subprocess.run(argv, capture_output=True, text=text, timeout=timeout, **kw)
    except FileNotFoundError:
        raise LabError(f"{argv[0]}: not installed ({TOOL_PACKAGES.get(argv[0], 'unknown package')})")
    except subprocess.TimeoutExpired:
        raise LabError(f"{what}: no answer after {timeout:.0f} s") from None
    if check and p.returncode != 0:
        err = p.stderr or p.stdout
        err = err.decode(errors="replace") if isinstance(err, bytes) else err
        raise LabError(f"{what}: exit {p.returncode}: {err.strip()}")
    return p


def run_logged(*argv: str | os.PathLike, log: Path, timeout: float, **kw) -> Completed:
    """Run a long command with its stderr appended to `log` (after a `$ argv` line) and its
    stdout captured, then appended too. LabError if it cannot run or overruns `timeout`; the
    exit status is the caller's to judge."""
    argv = [str(a) for a in argv]
    with open(log, "a") as f:
        f.write(f"\n$ {' '.join(argv)}\n")
        f.flush()
        try:
            p = subprocess.run(argv, stdout=subprocess.PIPE, stderr=f, text=True, timeout=timeout, **kw)
        except (OSError, subprocess.TimeoutExpired) as e:
            raise LabError(str(e)) from None
        f.write(p.stdout)
    return p


def spawn(argv: list[str], log: Path) -> int:
    """Start a daemon in a session of its own, output appended to `log`. -> its pid."""
    with open(log, "ab") as out:
        try:
            proc = subprocess.Popen([str(a) for a in argv], stdin=subprocess.DEVNULL, stdout=out,
                                    stderr=out, start_new_session=True)
        except FileNotFoundError:
            raise LabError(f"{argv[0]}: not installed ({TOOL_PACKAGES.get(argv[0], 'unknown package')})")
    return proc.pid


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
