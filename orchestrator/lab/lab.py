"""`lab up`, `lab status`, `lab down`: reconcile this machine with the state file."""
from __future__ import annotations

import os
import shutil
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

from orchestrator.lab import netns, state as statefile, vm
from orchestrator.lab.config import LabConfig
from orchestrator.lab.image import Image, ensure_image
from orchestrator.lab.plan import Host, plan_hosts, render_inventory, split_counts
from orchestrator.lab.ssh import ensure_key, ssh, ssh_argv
from orchestrator.lab.state import HostRecord, LabState
from orchestrator.lab.system import NETNS_TOOLS, VM_TOOLS, LabError, require_root, \
    require_tools

VM_SSH_CONNECT_TIMEOUT = 60     # one attempt, long: TCG key exchange takes seconds (LAB-NOTES)


def _alive(cfg: LabConfig, rec: HostRecord) -> bool:
    if rec.host.kind == "netns":
        return netns.sshd_alive(rec.host, rec.pid)
    return vm.vm_alive(cfg, rec.host, rec.pid)


def _save(st: LabState) -> None:
    cfg = st.config
    statefile.save(st, cfg.state_file)
    hosts = [r.host for r in sorted(st.hosts.values(), key=lambda r: (r.host.kind, r.host.index))]
    text = render_inventory(hosts, cfg.key_file, {n: r.kernel for n, r in st.hosts.items() if r.kernel})
    tmp = cfg.inventory_file.with_suffix(".tmp")
    tmp.write_text(text)
    os.replace(tmp, cfg.inventory_file)


def _same_lab(a: LabConfig, b: LabConfig) -> bool:
    keys = ("prefix", "subnet", "port_base", "cache_dir", "vm_kernels")
    return all(getattr(a, k) == getattr(b, k) for k in keys)


def up(cfg: LabConfig, total: int, vms: int = 0, say=print) -> LabState:
    """Bring the lab to `total` hosts, `vms` of them VMs: start what is missing or dead, keep
    what runs. Shrinking is refused (run `down` first)."""
    n_netns, n_vms = split_counts(total, vms)
    require_root()
    require_tools(NETNS_TOOLS + (VM_TOOLS if n_vms else []))
    with statefile.locked(cfg.state_dir):
        st = statefile.load(cfg.state_file)
        if st and not _same_lab(st.config, cfg):
            say(f"note: the lab in {cfg.state_dir} runs with prefix {st.config.prefix}, subnet "
                f"{st.config.subnet}, port base {st.config.port_base}, VM kernels "
                f"{','.join(st.config.vm_kernels)}: keeping those "
                "(`bpfleet lab down` first to change them)")
        st = st or LabState(config=cfg)
        cfg = st.config
        have = (len(st.of_kind("netns")), len(st.of_kind("vm")))
        if have[0] > n_netns or have[1] > n_vms:
            raise LabError(f"the lab has {have[0]} netns hosts and {have[1]} VMs, more than the "
                           f"{n_netns} and {n_vms} asked for; shrinking is not supported: "
                           "`bpfleet lab down`, then `lab up` again")
        os.chmod(cfg.state_dir, 0o700)
        key = ensure_key(cfg.key_file, f"bpfleet-lab@{os.uname().nodename}")
        plan = plan_hosts(cfg, n_netns, n_vms)
        vms_todo = [h for h in plan if h.kind == "vm"
                    and not (h.name in st.hosts and _alive(cfg, st.hosts[h.name]))]
        # The image first: a failed build leaves the lab as it was.
        image = ensure_image(cfg.cache_dir, say) if vms_todo else None
        _up_netns(st, [h for h in plan if h.kind == "netns"], key, say)
        _up_vms(st, [h for h in plan if h.kind == "vm"], vms_todo, image, key, say)
        _save(st)
        return st


def _up_netns(st: LabState, hosts: list[Host], key: Path, say) -> None:
    if not hosts:
        return
    cfg = st.config
    netns.check_subnet_free(cfg)
    netns.ensure_bridge(cfg)
    st.bridge = cfg.bridge
    st.created_dirs += [d for d in netns.ensure_mountpoints() if d not in st.created_dirs]
    _save(st)
    for h in hosts:
        rec = st.hosts.get(h.name)
        if rec and _alive(cfg, rec):
            say(f"  {h.name:16} netns  {h.address}:22  already up")
            continue
        t = time.monotonic()
        st.hosts[h.name] = HostRecord(h, pid=netns.start_host(cfg, h, key))
        _save(st)
        st.hosts[h.name].kernel = ssh(h, key, "uname -r", timeout=30).stdout.strip()
        _save(st)
        say(f"  {h.name:16} netns  {h.address}:22  ready in {time.monotonic() - t:.1f} s")


def _up_vms(st: LabState, hosts: list[Host], todo: list[Host], image: Image | None, key: Path,
            say) -> None:
    cfg = st.config
    for h in hosts:
        if h not in todo:
            say(f"  {h.name:16} vm     127.0.0.1:{h.ssh_port}  already up")
    if not todo:
        return
    st.image = image.to_json()
    t0 = time.monotonic()
    started = {}
    for h in todo:
        if h.name in st.hosts:
            vm.stop_vm(cfg, h, st.hosts[h.name].pid)
        pid = vm.start_vm(cfg, h, image, key)
        st.hosts[h.name] = HostRecord(h, pid=pid)
        started[h.name] = (h, pid)
        _save(st)
    kernels = sorted({image.boot(cfg.vm_kernel(h.index))[2] for h in todo})
    say(f"  booting {len(todo)} VM(s) under TCG (kernel {', '.join(kernels)})")
    vm.wait_ready(cfg, started, cfg.vm_boot_timeout, lambda n, k, s: say(
        f"  {n:16} vm     serial console ready after {s:.1f} s"))

    def check(h: Host) -> tuple[Host, str]:
        # One attempt with a long timeout; short polls never win against TCG key exchanges.
        out = ssh(h, key, "uname -r", timeout=VM_SSH_CONNECT_TIMEOUT + 60,
                  connect_timeout=VM_SSH_CONNECT_TIMEOUT).stdout.strip()
        return h, out

    with ThreadPoolExecutor(max_workers=len(todo)) as pool:
        for h, kernel in pool.map(check, todo):
            st.hosts[h.name].kernel = kernel
            _save(st)
            say(f"  {h.name:16} vm     127.0.0.1:{h.ssh_port}  ready in "
                f"{time.monotonic() - t0:.1f} s  (kernel {kernel})")


def status(cfg: LabConfig) -> dict:
    """The lab as JSON-able data: hosts with liveness, the inventory and key paths."""
    st = statefile.load(cfg.state_file)
    if st is None:
        return {"up": False, "state_dir": str(cfg.state_dir), "hosts": []}
    cfg = st.config
    hosts = []
    for rec in sorted(st.hosts.values(), key=lambda r: (r.host.kind, r.host.index)):
        h = rec.host
        hosts.append({**h.to_json(), "pid": rec.pid, "alive": _alive(cfg, rec),
                      "kernel": rec.kernel, "ssh": " ".join(ssh_argv(h, cfg.key_file))})
    return {"up": bool(hosts), "state_dir": str(cfg.state_dir),
            "inventory": str(cfg.inventory_file), "ssh_key": str(cfg.key_file),
            "config": cfg.to_json(), "image": st.image, "hosts": hosts}


def down(cfg: LabConfig, say=print) -> list[str]:
    """Stop everything the lab started and remove what it created; safe to run any time.
    Also sweeps what a crashed `up` may have left: namespaces and links named like the lab's,
    QEMU processes whose pidfile is in the lab's host directories."""
    require_root()
    removed: list[str] = []
    with statefile.locked(cfg.state_dir):
        st = statefile.load(cfg.state_file)
        if st:
            cfg = st.config
        for rec in (st.hosts.values() if st else []):
            if rec.host.kind == "netns":
                netns.stop_host(rec.host, rec.pid, cfg.host_dir(rec.host.name))
            else:
                vm.stop_vm(cfg, rec.host, rec.pid)
            removed.append(rec.host.name)
        removed += _sweep(cfg)
        netns.remove_mountpoints(st.created_dirs if st else [])
        for p in (cfg.state_file, cfg.inventory_file):
            p.unlink(missing_ok=True)
        hosts_dir = cfg.state_dir / "hosts"
        if hosts_dir.is_dir() and not any(hosts_dir.iterdir()):
            hosts_dir.rmdir()
    for name in removed:
        say(f"  {name}: stopped and removed")
    return removed


def _sweep(cfg: LabConfig) -> list[str]:
    found = netns.sweep(cfg) + vm.sweep(cfg)
    hosts_dir = cfg.state_dir / "hosts"
    for hdir in sorted(hosts_dir.iterdir()) if hosts_dir.is_dir() else []:
        shutil.rmtree(hdir, ignore_errors=True)
    return found
