"""netns hosts: a network namespace on the lab bridge with an sshd in its own mount and UTS
namespace. Everything a login on the host sees differs from this machine only where a real
host would differ for bpfleet: hostname, network, per-host directories (plan.HOST_DIRS) and a
bpffs instance of its own at /sys/fs/bpf. The kernel, /usr and /sys are this machine's."""
from __future__ import annotations

import ipaddress
import json
import os
import re
import shutil
import socket
import time
from pathlib import Path

from orchestrator.lab.config import LabConfig
from orchestrator.lab.plan import HOST_DIRS, Host
from orchestrator.lab.ssh import ensure_key
from orchestrator.lab.system import LabError, pid_alive, pid_cmdline, run, spawn, stop_pids

SSHD = "/usr/sbin/sshd"
# sshd's privilege-separation chroot: bind-mounted per host too, so that no lab going down
# removes it from under another lab's running hosts (see remove_mountpoints).
PRIVSEP_DIR = "/run/sshd"
MOUNTED_DIRS = (*HOST_DIRS, PRIVSEP_DIR)

# Runs inside the host's fresh mount + UTS namespace (propagation private: nothing leaks out),
# then becomes the host's sshd. $1 host name, $2 per-host root, $3 sshd_config, $4.. dirs.
HOST_INIT = r"""
set -eu
name=$1 root=$2 config=$3; shift 3
hostname "$name"
mount -t bpf bpf /sys/fs/bpf
mountpoint -q /sys/kernel/tracing || mount -t tracefs tracefs /sys/kernel/tracing
mountpoint -q /sys/kernel/debug || mount -t debugfs debugfs /sys/kernel/debug || true
for d in "$@"; do mount --bind "$root$d" "$d"; done
exec /usr/sbin/sshd -D -e -f "$config"
"""

SSHD_CONFIG = """\
# bpfleet lab host {name}
ListenAddress {address}:22
HostKey {host_key}
PidFile none
AuthorizedKeysFile {authorized_keys}
PermitRootLogin prohibit-password
StrictModes no
PubkeyAuthentication yes
PasswordAuthentication no
KbdInteractiveAuthentication no
UsePAM no
UseDNS no
PrintMotd no
AcceptEnv LANG LC_*
Subsystem sftp /usr/lib/openssh/sftp-server
"""


def _ip_json(*args: str) -> list:
    return json.loads(run("ip", "-j", *args).stdout or "[]")


def _link_exists(name: str) -> bool:
    return run("ip", "link", "show", "dev", name, check=False).returncode == 0


def _del_link(name: str) -> None:
    """Delete a link that may vanish on its own meanwhile: deleting a namespace deletes its veth
    pair from a kernel work queue, after `ip netns del` has returned."""
    p = run("ip", "link", "del", name, check=False)
    if p.returncode != 0 and _link_exists(name):
        raise LabError(f"ip link del {name}: exit {p.returncode}: {(p.stderr or p.stdout).strip()}")


def netns_exists(name: str) -> bool:
    return Path("/run/netns", name).exists()


def check_subnet_free(cfg: LabConfig) -> None:
    """Refuse a subnet that this machine already routes through anything but our bridge."""
    for r in _ip_json("-4", "route", "show", "table", "all"):
        dst = r.get("dst", "")
        if dst in ("default", "") or r.get("dev") == cfg.bridge or r.get("type") in ("local", "broadcast"):
            continue
        try:
            if ipaddress.ip_network(dst, strict=False).overlaps(cfg.network):
                raise LabError(f"lab subnet {cfg.subnet} overlaps route {dst} dev {r.get('dev')}: "
                               "choose another with --subnet or $BPFLEET_LAB_SUBNET")
        except ValueError:
            continue


def ensure_bridge(cfg: LabConfig) -> None:
    if not _link_exists(cfg.bridge):
        run("ip", "link", "add", "name", cfg.bridge, "type", "bridge")
    gw = f"{cfg.gateway}/{cfg.network.prefixlen}"
    addrs = {f"{a['local']}/{a['prefixlen']}" for link in _ip_json("-4", "addr", "show", "dev", cfg.bridge)
             for a in link.get("addr_info", [])}
    if gw not in addrs:
        run("ip", "addr", "add", gw, "dev", cfg.bridge)
    run("ip", "link", "set", cfg.bridge, "up")


def remove_bridge(cfg: LabConfig) -> None:
    if _link_exists(cfg.bridge):
        run("ip", "link", "del", cfg.bridge)


def ensure_mountpoints() -> list[str]:
    """The per-host directories must exist on this machine to be mounted over; returns the
    ones we had to create (removed again by `lab down` when empty)."""
    created = []
    for d in MOUNTED_DIRS:
        if not os.path.isdir(d):
            os.makedirs(d, mode=0o755)
            created.append(d)
    return created


def remove_mountpoints(dirs: list[str]) -> None:
    """rmdir the mount points `ensure_mountpoints` created, unless something is in them or a
    host of another lab still mounts over them (removing it would detach that mount)."""
    busy = _mounted_in_other_namespaces()
    for d in reversed(dirs):
        if d not in busy:
            try:
                os.rmdir(d)
            except OSError:
                pass


def _mounted_in_other_namespaces() -> set[str]:
    own = os.readlink("/proc/self/ns/mnt")
    seen, points = {own}, set()
    for pid in filter(str.isdigit, os.listdir("/proc")):
        try:
            ns = os.readlink(f"/proc/{pid}/ns/mnt")
            if ns in seen:
                continue
            seen.add(ns)
            with open(f"/proc/{pid}/mountinfo") as f:
                points.update(line.split()[4] for line in f)
        except OSError:
            continue
    return points


def _prepare_host_dir(cfg: LabConfig, host: Host, lab_key: Path) -> Path:
    hdir = cfg.host_dir(host.name)
    for d in MOUNTED_DIRS:
        Path(f"{hdir}/root{d}").mkdir(mode=0o755, parents=True, exist_ok=True)
    (hdir / "root/etc/bpfleet/lab-host").write_text(f"{host.name}\n")
    sdir = hdir / "ssh"
    host_key = ensure_key(sdir / "ssh_host_ed25519_key", f"root@{host.name}")
    authorized = sdir / "authorized_keys"
    authorized.write_text(lab_key.with_suffix(".pub").read_text())
    (sdir / "sshd_config").write_text(SSHD_CONFIG.format(
        name=host.name, address=host.address, host_key=host_key, authorized_keys=authorized))
    return hdir


def _wait_listening(host: Host, pid: int, log: Path, timeout: float = 15.0) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if not pid_alive(pid):
            raise LabError(f"{host.name}: sshd exited at start-up; its log {log}:\n"
                           + log.read_text()[-2000:])
        try:
            with socket.create_connection((host.address, 22), timeout=1):
                return
        except OSError:
            time.sleep(0.05)
    raise LabError(f"{host.name}: sshd not listening on {host.address}:22 after {timeout:.0f} s "
                   f"(log {log})")


def start_host(cfg: LabConfig, host: Host, lab_key: Path) -> int:
    """Create (or re-create) the namespace and veth, start the host's sshd; returns its pid."""
    if netns_exists(host.netns):
        stop_host(host, None)
    hdir = _prepare_host_dir(cfg, host, lab_key)
    run("ip", "netns", "add", host.netns)
    if _link_exists(host.veth):
        _del_link(host.veth)
    run("ip", "link", "add", host.veth, "type", "veth", "peer", "name", "eth0", "netns", host.netns)
    run("ip", "link", "set", host.veth, "master", cfg.bridge, "up")
    run("ip", "-n", host.netns, "addr", "add", f"{host.address}/{cfg.network.prefixlen}", "dev", "eth0")
    run("ip", "-n", host.netns, "link", "set", "eth0", "up")
    run("ip", "-n", host.netns, "link", "set", "lo", "up")
    log = hdir / "sshd.log"
    argv = ["nsenter", f"--net=/run/netns/{host.netns}", "--",
            "unshare", "--mount", "--uts", "--propagation", "private", "--",
            "/bin/sh", "-c", HOST_INIT, "lab-host-init", host.name, str(hdir / "root"),
            str(hdir / "ssh/sshd_config"), *MOUNTED_DIRS]
    pid = spawn(argv, log)
    _wait_listening(host, pid, log)
    return pid   # nsenter, unshare and sh exec: this is the sshd


def netns_pids(name: str) -> list[int]:
    if not netns_exists(name):
        return []
    out = run("ip", "netns", "pids", name, check=False).stdout
    return [int(p) for p in out.split()]


def stop_host(host: Host, pid: int | None, remove_dir: Path | None = None) -> None:
    """Stop every process in the host's namespace (its sshd, logins, exporters), then delete
    the namespace (which deletes the veth pair) and, if given, the per-host directory."""
    ours = remove_dir is not None and pid and f"-f {remove_dir}/ssh/sshd_config" in " ".join(
        pid_cmdline(pid))    # the recorded sshd, even if its namespace lost its name
    pids = netns_pids(host.netns) + ([pid] if ours else [])
    left = stop_pids(sorted(set(pids)))
    if left:
        raise LabError(f"{host.name}: processes {left} survived SIGKILL")
    if netns_exists(host.netns):
        run("ip", "netns", "del", host.netns)
    if host.veth and _link_exists(host.veth):
        _del_link(host.veth)
    if remove_dir is not None:
        shutil.rmtree(remove_dir, ignore_errors=True)


def sshd_alive(host: Host, pid: int | None) -> bool:
    return bool(pid) and pid_alive(pid) and pid in netns_pids(host.netns)


def sweep(cfg: LabConfig) -> list[str]:
    """Remove namespaces, veths and the bridge named like this lab's, with their processes:
    what a crashed `lab up` may have left without a state-file record."""
    found = []
    ns_re = re.compile(rf"^{cfg.prefix}-ns(\d+)$")
    for line in run("ip", "netns", "list").stdout.splitlines():
        m = ns_re.match(line.split()[0]) if line.strip() else None
        if m:
            i = int(m.group(1))
            stop_host(Host(name=m.group(0), kind="netns", index=i, address="", ssh_port=22,
                           exporter_url="", netns=m.group(0), veth=f"{cfg.prefix}-v{i}"), None)
            found.append(m.group(0))
    veth_re = re.compile(rf"^{cfg.prefix}-v\d+$")
    for link in _ip_json("link", "show"):
        if veth_re.match(link.get("ifname", "")):
            _del_link(link["ifname"])
    remove_bridge(cfg)
    return found
