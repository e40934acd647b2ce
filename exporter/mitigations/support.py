"""What this host's kernel says about mitigations: its stable version (for `fixed_in`) and
whether it can run a mitigation's program types at all (BPF-LSM active, types allowed)."""
from __future__ import annotations

import os
import re

from exporter import libbpf

LSM_FILE = "/sys/kernel/security/lsm"


def running_kernel() -> str:
    """The kernel's version with its stable patch level: Debian's release string (6.1.0-18-amd64)
    does not carry it, /proc/version does ("Debian 6.1.76-1")."""
    try:
        with open("/proc/version") as f:
            m = re.search(r"Debian (\d+\.\d+\.\d+)", f.read())
        if m:
            return m.group(1)
    except OSError:
        pass
    return os.uname().release


def unavailable(program_types: tuple[str, ...]) -> str | None:
    """Why this kernel cannot run programs of these types, or None."""
    for t in program_types:
        if t == "lsm":
            try:
                with open(LSM_FILE) as f:
                    active = f.read().strip().split(",")
            except OSError as e:
                return f"BPF-LSM: cannot read {LSM_FILE} ({e.strerror}); securityfs not mounted?"
            if "bpf" not in active:
                return f"BPF-LSM is not active (active LSMs: {','.join(active)}; boot with lsm=...,bpf)"
        if t != "tracing" and t in libbpf.known_prog_types() and not libbpf.probe_prog_type(t):
            return f"this kernel does not allow BPF programs of type {t!r}"
    return None
