"""Private places for test_workload.py's workloads, so that a series only the test feeds can be
counted exactly: a memory cgroup to OOM-kill in, a loop device to do block I/O on, a TCP port
outside the ephemeral range. Everything is removed after."""
from __future__ import annotations

import os
import random
import shutil
import socket
import subprocess
from pathlib import Path

from mitkit import ScratchCgroup, cgroup2_root


def _memory_v1_root() -> Path | None:
    with open("/proc/mounts") as f:
        for line in f:
            _, mnt, fstype, opts = line.split()[:4]
            if fstype == "cgroup" and "memory" in opts.split(","):
                return Path(mnt)
    return None


class MemoryCgroup(ScratchCgroup):
    """A ScratchCgroup with the memory controller, a small limit and no swap; run() a command
    that allocates past the limit and the kernel's memcg OOM killer kills it, nothing outside
    is touched. Directly below the root of the memory hierarchy: on cgroup v2 a cgroup holding
    processes (ours, a systemd scope) cannot enable controllers for its children, the root can.
    cgroup v1 (hybrid hosts, like this machine) has its own memory hierarchy."""

    def __init__(self, limit: int):
        super().__init__()
        self.limit = limit
        root = cgroup2_root()
        self.v2 = "memory" in (root / "cgroup.subtree_control").read_text().split()
        if not self.v2:
            v1 = _memory_v1_root()
            if v1 is None:
                raise AssertionError(f"no memory controller: not enabled in {root}/cgroup.subtree_control "
                                     "and no cgroup v1 memory hierarchy mounted")
            self.path = v1 / self.path.name

    def __enter__(self) -> "MemoryCgroup":
        super().__enter__()
        try:
            if self.v2:
                (self.path / "memory.max").write_text(str(self.limit))
                (self.path / "memory.swap.max").write_text("0")
            else:
                (self.path / "memory.limit_in_bytes").write_text(str(self.limit))
                memsw = self.path / "memory.memsw.limit_in_bytes"   # only with swap accounting
                if memsw.exists():
                    memsw.write_text(str(self.limit))
        except BaseException:
            self.__exit__(None, None, None)
            raise
        return self

    def oom_kills(self) -> int:
        """The kernel's own count of OOM kills in this cgroup."""
        text = (self.path / ("memory.events" if self.v2 else "memory.oom_control")).read_text()
        return int(dict(line.split() for line in text.splitlines())["oom_kill"])


def vmstat_oom_kills() -> int:
    """The kernel's count of OOM kills on the whole machine (any cgroup, any caller)."""
    with open("/proc/vmstat") as f:
        return int(dict(line.split() for line in f)["oom_kill"])


class LoopDevice:
    """A loop device over a sparse file: a disk that only the test does I/O on."""

    def __init__(self, backing: Path, size: int):
        self.backing, self.size, self.dev = backing, size, ""

    def __enter__(self) -> "LoopDevice":
        with open(self.backing, "wb") as f:
            f.truncate(self.size)
        self.dev = subprocess.run(["losetup", "--find", "--show", str(self.backing)], check=True,
                                  capture_output=True, text=True).stdout.strip()
        # Where udev runs it probes a new disk (reads it): let that happen before the test counts.
        if shutil.which("udevadm"):
            subprocess.run(["udevadm", "settle"], check=False, timeout=60)
        return self

    @property
    def name(self) -> str:
        return os.path.basename(self.dev)

    def queue_limit(self, name: str) -> int:
        return int(Path(f"/sys/block/{self.name}/queue/{name}").read_text())

    def __exit__(self, *exc) -> None:
        try:
            if self.dev:
                subprocess.run(["losetup", "--detach", self.dev], check=True, capture_output=True)
        finally:
            self.backing.unlink(missing_ok=True)


def listen_on_private_port() -> socket.socket:
    """A listening loopback socket on a port below the ephemeral range, which the kernel never
    hands out to connect() or bind(0) in any network namespace: no other TCP connection on the
    machine has it as a local or remote port unless someone binds it by number."""
    low = int(Path("/proc/sys/net/ipv4/ip_local_port_range").read_text().split()[0])
    for _ in range(100):
        port = random.randrange(20000, low)
        s = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        try:
            s.bind(("127.0.0.1", port))
        except OSError:
            s.close()
            continue
        return s
    raise AssertionError(f"no free port in 20000..{low}")
