"""VM hosts: QEMU under TCG (KVM does not work on these machines, see LAB-NOTES), each booting
the cached image through a copy-on-write overlay of its own, daemonized with a pidfile so
`lab down` stops exactly the VMs it started."""
from __future__ import annotations

import re
import shutil
import socket
import time
from pathlib import Path

from orchestrator.lab import guest
from orchestrator.lab.config import LabConfig
from orchestrator.lab.image import Image
from orchestrator.lab.plan import EXPORTER_PORT, Host
from orchestrator.lab.ssh import ensure_key
from orchestrator.lab.system import LabError, pid_alive, pid_cmdline, read_pidfile, run, stop_pids

QEMU = "qemu-system-x86_64"
# BPF-LSM on (for the LSM mitigations, docs/mitigations.md): Debian's 6.1 and 6.12 kernels have
# CONFIG_BPF_LSM=y and lists bpf in its default CONFIG_LSM, but an explicit list keeps it on
# whatever the kernel's default (an lsm= list replaces the default, so it names the others too).
LSM_LIST = "landlock,lockdown,yama,integrity,apparmor,bpf"
KERNEL_CMDLINE = f"console=ttyS0 quiet panic=-1 lsm={LSM_LIST}"
READY_RE = re.compile(rf"{guest.READY} (\S+) (\S+)")
FAILURE_RES = [re.compile(rf"{guest.FAILED}.*"), re.compile(r"Kernel panic.*")]


def qemu_argv(cfg: LabConfig, host: Host, image: Image, hdir: Path) -> list[str]:
    fwd = (f"hostfwd=tcp:127.0.0.1:{host.ssh_port}-:22,"
           f"hostfwd=tcp:127.0.0.1:{host.exporter_fwd_port}-:{EXPORTER_PORT}")
    fw = {name: hdir / "fw_cfg" / name for name in ("hostname", "authorized_keys", "host_key")}
    vmlinux, initramfs, _release = image.boot(cfg.vm_kernel(host.index))
    argv = [QEMU, "-name", host.name, "-M", "pc", "-accel", "tcg,tb-size=128", "-cpu", "max",
            "-smp", "1", "-m", str(cfg.vm_memory_mb), "-nodefaults", "-no-user-config",
            "-display", "none",
            "-kernel", str(vmlinux), "-initrd", str(initramfs),
            "-append", KERNEL_CMDLINE,
            "-drive", f"file={hdir / 'overlay.qcow2'},if=virtio,format=qcow2,cache=unsafe",
            "-netdev", f"user,id=n0,restrict=on,{fwd}", "-device", "virtio-net-pci,netdev=n0",
            "-serial", f"file:{hdir / 'serial.log'}",
            "-daemonize", "-pidfile", str(hdir / "qemu.pid")]
    for name, path in fw.items():
        argv += ["-fw_cfg", f"name={guest.FW_CFG}/{name},file={path}"]
    return argv


def _port_free(port: int) -> bool:
    """Free for a listener as QEMU's (slirp sets SO_REUSEADDR): connections of a VM just
    stopped in TIME_WAIT do not count, another listener does."""
    with socket.socket() as s:
        s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            s.bind(("127.0.0.1", port))
            return True
        except OSError:
            return False


def start_vm(cfg: LabConfig, host: Host, image: Image, lab_key: Path) -> int:
    """Create the overlay and launch QEMU; returns its pid (the guest is still booting)."""
    hdir = cfg.host_dir(host.name)
    shutil.rmtree(hdir, ignore_errors=True)
    (hdir / "fw_cfg").mkdir(parents=True)
    for port in (host.ssh_port, host.exporter_fwd_port):
        if not _port_free(port):
            raise LabError(f"{host.name}: 127.0.0.1:{port} is in use; choose another port base "
                           "with --port-base or $BPFLEET_LAB_PORT_BASE")
    run("qemu-img", "create", "-q", "-f", "qcow2", "-F", "qcow2", "-b", image.base,
        hdir / "overlay.qcow2")
    key = ensure_key(hdir / "ssh_host_ed25519_key", f"root@{host.name}")
    shutil.copy(key, hdir / "fw_cfg/host_key")
    (hdir / "fw_cfg/hostname").write_text(host.name)
    shutil.copy(lab_key.with_suffix(".pub"), hdir / "fw_cfg/authorized_keys")
    argv = qemu_argv(cfg, host, image, hdir)
    (hdir / "qemu.argv").write_text(" ".join(argv) + "\n")
    p = run(*argv, check=False, timeout=60)
    pid = read_pidfile(hdir / "qemu.pid")
    if p.returncode != 0 or not pid:
        raise LabError(f"{host.name}: QEMU failed to start (exit {p.returncode}): "
                       f"{(p.stderr or p.stdout).strip()}; command in {hdir / 'qemu.argv'}")
    return pid


def wait_ready(cfg: LabConfig, vms: dict[str, tuple[Host, int]], timeout: float,
               on_ready=lambda name, kernel, seconds: None) -> dict[str, str]:
    """Wait for every VM's readiness marker on its serial console. Returns {name: kernel}."""
    t0 = time.monotonic()
    kernels: dict[str, str] = {}
    while len(kernels) < len(vms):
        for name, (host, pid) in vms.items():
            if name in kernels:
                continue
            log = cfg.host_dir(name) / "serial.log"
            text = log.read_text(errors="replace") if log.exists() else ""
            m = READY_RE.search(text)
            if m:
                kernels[name] = m.group(2)
                on_ready(name, m.group(2), time.monotonic() - t0)
                continue
            why = next((f.search(text).group(0) for f in FAILURE_RES if f.search(text)), None)
            if why or not pid_alive(pid):
                raise LabError(f"{name}: boot failed: {why or 'QEMU exited'}; serial console "
                               f"{log}:\n{text[-1500:]}")
        if len(kernels) < len(vms):
            if time.monotonic() - t0 > timeout:
                late = sorted(set(vms) - set(kernels))
                raise LabError(f"{', '.join(late)}: no {guest.READY} on the serial console after "
                               f"{timeout:.0f} s (see {cfg.host_dir(late[0]) / 'serial.log'})")
            time.sleep(0.5)
    return kernels


def is_our_qemu(pid: int | None, hdir: Path) -> bool:
    argv = pid_cmdline(pid) if pid else []
    return bool(argv) and argv[0].endswith(QEMU) and f"file:{hdir / 'serial.log'}" in argv


def vm_alive(cfg: LabConfig, host: Host, pid: int | None) -> bool:
    return bool(pid) and pid_alive(pid) and is_our_qemu(pid, cfg.host_dir(host.name))


def stop_vm(cfg: LabConfig, host: Host, pid: int | None, remove_dir: bool = True) -> None:
    hdir = cfg.host_dir(host.name)
    pids = {p for p in (pid, read_pidfile(hdir / "qemu.pid")) if p and is_our_qemu(p, hdir)}
    left = stop_pids(sorted(pids))
    if left:
        raise LabError(f"{host.name}: QEMU {left} survived SIGKILL")
    if remove_dir:
        shutil.rmtree(hdir, ignore_errors=True)


def sweep(cfg: LabConfig) -> list[str]:
    """Stop QEMU processes whose pidfile is in one of this lab's host directories."""
    found = []
    hosts_dir = cfg.state_dir / "hosts"
    for pidfile in sorted(hosts_dir.glob("*/qemu.pid")) if hosts_dir.is_dir() else []:
        pid = read_pidfile(pidfile)
        if pid and is_our_qemu(pid, pidfile.parent) and pid_alive(pid):
            name = pidfile.parent.name
            stop_vm(cfg, Host(name=name, kind="vm", index=0, address="", ssh_port=0,
                              exporter_url=""), pid)
            found.append(name)
    return found
