"""The lab: real test hosts on this machine that Ansible reaches over SSH.

Two kinds of host, one inventory:

- netns hosts (native speed, this machine's kernel): a network namespace on the lab bridge, an
  sshd in its own mount and UTS namespace with per-host /etc/bpfleet, /var/lib/bpfleet,
  /run/bpfleet, /opt/bpfleet, /var/log/bpfleet, /tmp and a fresh bpffs at /sys/fs/bpf.
- VMs (another kernel build: Debian bookworm's 6.1 under QEMU TCG), booted from a cached
  debootstrap image through a copy-on-write overlay each.

`lab.up()`, `lab.status()` and `lab.down()` are the entry points (see docs/lab.md).
"""
from orchestrator.lab.config import LabConfig
from orchestrator.lab.system import LabError

__all__ = ["LabConfig", "LabError"]
