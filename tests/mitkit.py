"""Helpers for the tests that apply mitigations (tests/mitigations, tests/dashboards): a veth
pair into a scratch network namespace, UDP traffic from chosen source addresses, a scratch
cgroup v2 and the commands that hit cgroup_deny's lists. Names carry BPFLEET_LAB_PREFIX (default
"bpflmit") so parallel sessions on one machine don't collide, and a tag so that two users in one
session don't either; everything is removed after."""
from __future__ import annotations

import ipaddress
import json
import os
import select
import socket
import subprocess
import time
import uuid
from pathlib import Path

PREFIX = os.environ.get("BPFLEET_LAB_PREFIX", "bpflmit")[:7]
SUBNET = os.environ.get("BPFLEET_LAB_SUBNET", "10.213.220.0/24")


def cgroup2_root() -> Path:
    """Where cgroup v2 is mounted: /sys/fs/cgroup, or /sys/fs/cgroup/unified on hybrid hosts."""
    with open("/proc/mounts") as f:
        for line in f:
            dev, mnt, fstype = line.split()[:3]
            if fstype == "cgroup2":
                return Path(mnt)
    raise AssertionError("no cgroup v2 hierarchy is mounted")


# cgroup_deny's test commands: read a deny-listed device (/dev/zero, "c 1:5"), write a
# deny-listed sysctl (net/ipv4/ip_forward) inside a throwaway network namespace, so the host's
# value is never touched.
DENIED_DEVICE, DENIED_SYSCTL = "c 1:5", "net/ipv4/ip_forward"
READ_ZERO = ("sh", "-c", "head -c1 /dev/zero > /dev/null")
WRITE_SYSCTL = ("unshare", "-n", "python3", "-c",   # dash's echo says "I/O error" for any errno
                "import os; os.write(os.open('/proc/sys/net/ipv4/ip_forward', os.O_WRONLY), b'1')")


def _net(last: int) -> str:
    """An address in the top /27 of our lab subnet (the lab's VMs use the low addresses)."""
    base = SUBNET.split("/")[0].rsplit(".", 1)[0]
    return f"{base}.{last}"


def _net6(last: int) -> str:
    """The IPv6 twin of _net(): a unique-local address made of our lab subnet's octets
    (10.213.220.0/24 -> fd0a:d5dc::<last>), so that parallel sessions differ here too."""
    a, b, c = (int(o) for o in SUBNET.split("/")[0].split(".")[:3])
    # canonical form, as recvfrom() reports it
    return str(ipaddress.IPv6Address(f"fd{a:02x}:{b:02x}{c:02x}::{last:x}"))


def sh(*cmd: str, check: bool = True) -> subprocess.CompletedProcess:
    r = subprocess.run(cmd, capture_output=True, text=True)
    if check and r.returncode != 0:
        raise AssertionError(f"{' '.join(cmd)} failed ({r.returncode}): {r.stderr.strip()}")
    return r


class VethPair:
    """host end `<prefix><tag>-h` here (HOST_IP, HOST_IP6), peer end `<prefix><tag>-p` in netns
    `<prefix><tag>-peer` holding ALLOWED_SRC and DENIED_SRC (and their IPv6 twins, *_SRC6);
    traffic flows peer -> host, through the host end's XDP. `block` is the last octet of the /28
    of the lab subnet it uses (240 for the mitigation tests, 224 for the dashboards test), so
    pairs with different tags and blocks coexist."""

    def __init__(self, tag: str = "", block: int = 240):
        assert len(tag) <= 4 and block % 16 == 0 and 0 <= block <= 240, (tag, block)
        self.netns, self.host, self.peer = f"{PREFIX}{tag}-peer", f"{PREFIX}{tag}-h", f"{PREFIX}{tag}-p"
        self.block = block
        self.HOST_IP, self.ALLOWED_SRC, self.DENIED_SRC = _net(block + 1), _net(block + 2), _net(block + 10)
        self.DENIED_PREFIX = _net(block + 8) + "/29"     # .block+8 - .block+15
        self.ALLOWED_PREFIX = _net(block) + "/29"        # .block - .block+7
        self.HOST_IP6, self.ALLOWED_SRC6 = _net6(block + 1), _net6(block + 2)
        self.DENIED_SRC6 = _net6(block + 10)
        self.DENIED_PREFIX6 = _net6(block + 8) + "/125"

    def up(self) -> "VethPair":
        self.down()
        sh("ip", "netns", "add", self.netns)
        sh("ip", "link", "add", self.host, "type", "veth", "peer", "name", self.peer, "netns", self.netns)
        sh("ip", "addr", "add", f"{self.HOST_IP}/32", "dev", self.host)
        sh("ip", "link", "set", self.host, "up")
        sh("ip", "route", "add", _net(self.block) + "/28", "dev", self.host)
        sh("ip", "addr", "add", f"{self.HOST_IP6}/128", "dev", self.host, "nodad")
        sh("ip", "route", "add", _net6(self.block) + "/124", "dev", self.host)
        for addr in (self.ALLOWED_SRC, self.DENIED_SRC):
            self.in_ns("ip", "addr", "add", f"{addr}/28", "dev", self.peer)
        for addr in (self.ALLOWED_SRC6, self.DENIED_SRC6):
            self.in_ns("ip", "addr", "add", f"{addr}/124", "dev", self.peer, "nodad")
        self.in_ns("ip", "link", "set", self.peer, "up")
        self.in_ns("ip", "link", "set", "lo", "up")
        return self

    def in_ns(self, *cmd: str, check: bool = True) -> subprocess.CompletedProcess:
        return sh("ip", "netns", "exec", self.netns, *cmd, check=check)

    def down(self) -> None:
        sh("ip", "link", "del", self.host, check=False)
        sh("ip", "netns", "del", self.netns, check=False)

    def xdp_attached(self) -> bool:
        info = json.loads(sh("ip", "-j", "link", "show", "dev", self.host).stdout)[0]
        return "xdp" in info

    def send(self, sources: dict[str, int], timeout: float = 1.0) -> dict[str, int]:
        """Send UDP datagrams peer -> host: {source address (IPv4 or IPv6): how many}.
        -> received per source."""
        rx, dests = {}, {}              # IP version -> socket bound on the host end; source -> it
        for src in sources:
            version = ipaddress.ip_address(src).version
            if version not in rx:
                family = socket.AF_INET6 if version == 6 else socket.AF_INET
                rx[version] = socket.socket(family, socket.SOCK_DGRAM)
                rx[version].bind((self.HOST_IP6 if version == 6 else self.HOST_IP, 0))
            dests[src] = rx[version].getsockname()[:2]
        token = uuid.uuid4().hex[:8].encode()
        script = ("import socket,sys,json\n"
                  "for src,(n,dst,port) in json.loads(sys.argv[1]).items():\n"
                  "    s=socket.socket(socket.AF_INET6 if ':' in src else socket.AF_INET,socket.SOCK_DGRAM)\n"
                  "    s.bind((src,0))\n"
                  f"    [s.sendto({token!r}+src.encode(),(dst,port)) for _ in range(n)]\n")
        self.in_ns("python3", "-c", script, json.dumps({s: (n, *dests[s]) for s, n in sources.items()}))
        got = {src: 0 for src in sources}
        end = time.monotonic() + timeout
        try:
            while sum(got.values()) < sum(sources.values()) and (left := end - time.monotonic()) > 0:
                for sock in select.select(list(rx.values()), [], [], left)[0]:
                    data, addr = sock.recvfrom(256)
                    if data.startswith(token):
                        got[addr[0]] = got.get(addr[0], 0) + 1
        finally:
            for sock in rx.values():
                sock.close()
        return got


class ScratchCgroup:
    """A cgroup v2 directory of our own; `run()` starts a command inside it."""

    def __init__(self):
        self.path = cgroup2_root() / f"{PREFIX}-{uuid.uuid4().hex[:6]}"

    def __enter__(self) -> "ScratchCgroup":
        self.path.mkdir()
        return self

    def run(self, *cmd: str) -> subprocess.CompletedProcess:
        procs = str(self.path / "cgroup.procs")

        def enter():
            with open(procs, "w") as f:
                f.write(str(os.getpid()))
        return subprocess.run(cmd, capture_output=True, text=True, preexec_fn=enter, timeout=30)

    def __exit__(self, *exc) -> None:
        for _ in range(50):
            try:
                self.path.rmdir()
                return
            except OSError:
                time.sleep(0.1)   # the last process is still leaving
        raise AssertionError(f"could not remove cgroup {self.path}")
