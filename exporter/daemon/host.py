"""Preparing the host for the exporter, and the exporter for the host: capabilities checked at
start and dropped once programs are attached (exporter/privileges.py), bpffs and tracefs
mounted, pins of a crashed predecessor removed, kernel run-time stats switched on."""
from __future__ import annotations

import logging
import os
import shutil
import subprocess

from exporter import kallsyms, libbpf, privileges

log = logging.getLogger("bpfleet.exporter")


def missing_capabilities() -> str | None:
    """Why the exporter cannot load programs here (capabilities it lacks), or None."""
    lacking = privileges.missing()
    if not lacking:
        return None
    return (f"missing capabilities {', '.join(c.upper() for c in lacking)} "
            "(needed to load and attach BPF programs; see docs/security.md)")


def prepare_kernel_filesystems() -> None:
    """bpffs for pins, tracefs for tracepoint ids; mount what is missing (we run as root)."""
    for fstype, path in (("bpf", "/sys/fs/bpf"), ("tracefs", "/sys/kernel/tracing")):
        if subprocess.run(["mountpoint", "-q", path]).returncode != 0:
            r = subprocess.run(["mount", "-t", fstype, fstype, path], capture_output=True, text=True)
            if r.returncode != 0:
                raise SystemExit(f"bpfleet exporter: {path} is not mounted and mounting it failed: {r.stderr.strip()}")
            log.info("mounted %s on %s", fstype, path)


def clean_stale_pins(pin_root: str) -> None:
    """Pins left by a crashed exporter keep programs attached; remove them before we start."""
    if os.path.isdir(pin_root) and os.listdir(pin_root):
        log.warning("removing pins left behind by a previous run under %s", pin_root)
        shutil.rmtree(pin_root, ignore_errors=True)


def start_bpf_stats() -> tuple[int | None, str | None]:
    """Kernel run-time stats on for as long as we live (BPF_ENABLE_STATS needs CAP_SYS_ADMIN).
    Without it, the kernel.bpf_stats_enabled sysctl does the same (the systemd unit sets it).
    -> (fd to keep open or None, a note for /status when stats are off)."""
    try:
        return libbpf.enable_stats(), None
    except libbpf.LibbpfError as e:
        try:
            with open("/proc/sys/kernel/bpf_stats_enabled") as f:
                if f.read().strip() == "1":
                    log.info("bpf_stats on through kernel.bpf_stats_enabled (%s)", e)
                    return None, None
        except OSError:
            pass
        note = ("bpf_stats are off: kernel cost is not measured and budgets are not enforced "
                f"({e}; give CAP_SYS_ADMIN or set kernel.bpf_stats_enabled=1)")
        log.error("%s", note)
        return None, note


def drop_privileges(running: list, accept_mitigations: bool) -> dict | None:
    """After the first attach, keep only what reloads and upgrades of the `running`
    LoadedPrograms need (exporter/privileges.py). -> what was kept and dropped."""
    types = {t for p in running for t in p.plan.manifest.program_types}
    if accept_mitigations:
        # A host that takes mitigations keeps what attaching XDP / cgroup ones needs, so one
        # can be applied through the admin API without a restart (docs/security.md).
        types |= {"xdp", "cgroup_device"}
    if any(lp.decoder == "ksym" for p in running for mp in p.plan.metrics for lp in mp.labels):
        kallsyms.SYMBOLS.load()   # read /proc/kallsyms while we may (CAP_SYSLOG): after, addresses read as 0
    try:
        result = privileges.drop(privileges.keep_for(types))
    except OSError as e:
        log.error("could not drop capabilities: %s", e)
        return {"error": str(e), **privileges.current()}
    log.info("capabilities kept: %s; dropped: %s%s", ", ".join(result["kept"]) or "none",
             ", ".join(result["dropped"]) or "none",
             "" if result["bounding_set"] else " (bounding set unchanged: no CAP_SETPCAP)")
    return result
