"""The lab's address plan and its Ansible inventory: pure functions of the config and counts.

netns host i (1-based): name `<prefix>-ns<i>`, network namespace of the same name, host-side
veth `<prefix>-v<i>` on bridge `<prefix>-br0`, address = subnet base + 10 + i (10.213.0.11 for
ns1), sshd on :22, exporter on :9436 — reached directly from this machine over the bridge.
VM i: name `<prefix>-vm<i>`, reached on 127.0.0.1: ssh at port_base + i, exporter at
port_base + 100 + i (QEMU user-mode networking forwards them to the guest's :22 and :9436)."""
from __future__ import annotations

from dataclasses import asdict, dataclass
from pathlib import Path

from orchestrator.lab.config import SHADOWED_DIRS, LabConfig
from orchestrator.lab.system import LabError

EXPORTER_PORT = 9436
HOST_OFFSET = 10          # netns host i gets subnet base + HOST_OFFSET + i
MAX_VMS = 99              # VM exporter ports are port_base + 100 + i
REMOTE_PYTHON = "/usr/bin/python3"
SSH_COMMON_ARGS = "-o StrictHostKeyChecking=no -o UserKnownHostsFile=/dev/null"
# Per-host directories: on a netns host each is bind-mounted from <state>/hosts/<name>/root<dir>.
# /tmp and /root stay shared (Ansible's remote temp files are uniquely named anyway).
HOST_DIRS = SHADOWED_DIRS


@dataclass(frozen=True)
class Host:
    name: str
    kind: str               # "netns" or "vm"
    index: int              # 1-based within its kind
    address: str            # what ssh/Ansible connects to
    ssh_port: int
    exporter_url: str       # the exporter as seen from this machine
    netns: str | None = None
    veth: str | None = None
    exporter_fwd_port: int | None = None   # VMs: 127.0.0.1 port forwarded to the guest's :9436

    def to_json(self) -> dict:
        return asdict(self)


def max_netns_hosts(cfg: LabConfig) -> int:
    return cfg.network.num_addresses - 2 - HOST_OFFSET


def netns_host(cfg: LabConfig, i: int) -> Host:
    if not 1 <= i <= max_netns_hosts(cfg):
        raise LabError(f"netns host {i}: subnet {cfg.subnet} has room for "
                       f"{max_netns_hosts(cfg)} netns hosts")
    addr = str(cfg.network.network_address + HOST_OFFSET + i)
    name = f"{cfg.prefix}-ns{i}"
    return Host(name=name, kind="netns", index=i, address=addr, ssh_port=22,
                exporter_url=f"http://{addr}:{EXPORTER_PORT}", netns=name,
                veth=f"{cfg.prefix}-v{i}")


def vm_host(cfg: LabConfig, i: int) -> Host:
    if not 1 <= i <= MAX_VMS:
        raise LabError(f"VM {i}: at most {MAX_VMS} VMs")
    fwd = cfg.port_base + 100 + i
    return Host(name=f"{cfg.prefix}-vm{i}", kind="vm", index=i, address="127.0.0.1",
                ssh_port=cfg.port_base + i, exporter_url=f"http://127.0.0.1:{fwd}",
                exporter_fwd_port=fwd)


def split_counts(total: int, vms: int) -> tuple[int, int]:
    """`lab up N --vms K`: N hosts in all, K of them VMs. Returns (netns hosts, VMs)."""
    if total < 1:
        raise LabError(f"lab up {total}: need at least one host")
    if not 0 <= vms <= total:
        raise LabError(f"--vms {vms}: must be between 0 and the total host count {total}")
    return total - vms, vms


def plan_hosts(cfg: LabConfig, n_netns: int, n_vms: int) -> list[Host]:
    return ([netns_host(cfg, i) for i in range(1, n_netns + 1)]
            + [vm_host(cfg, i) for i in range(1, n_vms + 1)])


def _ini_value(v) -> str:
    s = str(v)
    return f"'{s}'" if any(c in s for c in " \t#;=") else s


def host_vars(h: Host, kernel: str | None = None) -> dict:
    v = {"ansible_host": h.address, "ansible_port": h.ssh_port,
         "bpfleet_lab_kind": h.kind, "bpfleet_exporter_url": h.exporter_url}
    if kernel:
        v["bpfleet_lab_kernel"] = kernel
    if h.kind == "vm":
        # TCG guests: a key exchange takes 2-3 s, module start-up ~1 s (LAB-NOTES).
        v["ansible_ssh_timeout"] = 60
    return v


def render_inventory(hosts: list[Host], key_file: Path, kernels: dict[str, str] | None = None
                     ) -> str:
    """Ansible INI inventory: groups netns and vms, connection settings in [all:vars]."""
    kernels = kernels or {}
    out = ["# Written by `bpfleet lab up`; rewritten on every change of the lab. Do not edit.", ""]
    for group, kind in (("netns", "netns"), ("vms", "vm")):
        out.append(f"[{group}]")
        for h in hosts:
            if h.kind == kind:
                hv = host_vars(h, kernels.get(h.name))
                out.append(" ".join([h.name] + [f"{k}={_ini_value(v)}" for k, v in hv.items()]))
        out.append("")
    all_vars = {"ansible_user": "root", "ansible_ssh_private_key_file": str(key_file),
                "ansible_python_interpreter": REMOTE_PYTHON,
                "ansible_ssh_common_args": SSH_COMMON_ARGS, "ansible_ssh_pipelining": "true"}
    out.append("[all:vars]")
    out += [f"{k}={_ini_value(v)}" for k, v in all_vars.items()]
    return "\n".join(out) + "\n"
