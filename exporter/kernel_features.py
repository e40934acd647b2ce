"""What the running kernel offers, the I/O shell: answers to variant requirements
(core/variants.py), whether a mitigation's program types can run at all, the kernel's version.

Program types and helpers through libbpf's probe API, BPF trampolines by loading a `return 0`
fentry program, attach targets in the kernel's BTF, tracefs and /proc/kallsyms, BPF-LSM from
the active LSM list (the one place that reads it)."""
from __future__ import annotations

import errno
import glob
import os
import re

from core.variants import Finding, Requirement
from exporter import btf_source, kallsyms, libbpf
from exporter.libbpf import features as lp

TRACEFS = ("/sys/kernel/tracing", "/sys/kernel/debug/tracing")
KPROBE_PMU = "/sys/bus/event_source/devices/kprobe"
LSM_LIST = "/sys/kernel/security/lsm"


def _tracefs() -> str | None:
    return next((d for d in TRACEFS if os.path.isdir(os.path.join(d, "events"))), None)


# ksym target -> in /proc/kallsyms? (asked names only: the kernel does not change under us)
_KSYMS: dict[str, bool] = {}


def _ksym_known(names) -> None:
    """Answer these ksym names in one pass over /proc/kallsyms (~0.3 s a pass here)."""
    asked = {n for n in names if n not in _KSYMS}
    if asked:
        found = kallsyms.present(asked)
        _KSYMS.update((n, n in found) for n in asked)


def find(req: Requirement) -> Finding:
    ok, reason = _answer(req)
    return Finding(req, ok, "" if ok else reason)


def find_all(reqs) -> list[Finding]:
    """find() for each of one variant's requirements: /proc/kallsyms is read once for all of
    them, and the kernel's BTF (~6 MB parsed) is freed afterwards, not kept for the process's
    life (the answers are)."""
    reqs = list(reqs)
    try:
        _ksym_known(r.target for r in reqs if r.kind == "ksym")
        return [find(r) for r in reqs]
    finally:
        lp.release_kernel_btf()


def _answer(r: Requirement) -> tuple[bool, str]:
    k = r.kind
    if k == "kernel_btf":
        return btf_source.kernel_has_btf() and lp.kernel_btf(), \
            f"the kernel has no BTF of its own ({btf_source.kernel_btf_path()} missing; an external " \
            "BTF file serves CO-RE relocations, not BTF attach targets)"
    if k == "prog_type":
        if r.name not in libbpf.known_prog_types():
            return False, f"libbpf knows no program type {r.name!r}"
        return libbpf.probe_prog_type(r.name), f"the kernel refuses BPF programs of type {r.name}"
    if k == "trampoline":
        err = lp.probe_trampoline(r.name, r.target)
        if err == errno.ENOENT:
            return False, f"no function {r.target} in the kernel's BTF ({r.name} target)"
        if err == errno.EPERM:   # the same for every target: one reason, said once
            return False, ("no BPF trampolines on this kernel (a minimal fentry/fexit program "
                           "is refused with EPERM)")
        return err == 0, (f"the kernel refused a minimal {r.name} program on {r.target}: "
                          f"{errno.errorcode.get(err, err)}")
    if k == "btf_tracepoint":
        return bool(lp.btf_typedef(f"btf_trace_{r.target}")), \
            f"no BTF-typed tracepoint {r.target} in the kernel (btf_trace_{r.target})"
    if k == "tracefs_event":
        base = _tracefs()
        if base is None:
            return False, "tracefs is not mounted (/sys/kernel/tracing)"
        return bool(glob.glob(os.path.join(base, "events", r.target, "id"))), \
            f"no tracepoint {r.target} in tracefs"
    if k == "kprobes":
        base = _tracefs()
        have = os.path.exists(KPROBE_PMU) or bool(base and os.path.exists(os.path.join(base, "kprobe_events")))
        return have, "kprobes are not available (no kprobe PMU, no kprobe_events in tracefs)"
    if k == "ksym":
        _ksym_known([r.target])
        return _KSYMS[r.target], f"no kernel function {r.target} in /proc/kallsyms"
    if k == "lsm":
        active, error = active_lsms()
        if error:
            return False, f"BPF-LSM: cannot read {LSM_LIST} ({error}); securityfs not mounted?"
        return "bpf" in active, f"BPF-LSM is not active (active LSMs: {','.join(active)}; boot with lsm=...,bpf)"
    if k == "helper":
        hid = lp.helper_id(r.name)
        if hid is None:
            return (not lp.kernel_btf()), f"the kernel has no helper bpf_{r.name}"
        ptype = libbpf.prog_type_ids().get(r.target)
        if ptype is None or r.target == "tracing":   # libbpf cannot probe tracing programs' helpers
            return True, ""
        return lp.probe_helper(ptype, hid), f"bpf_{r.name} is not allowed in {r.target} programs"
    return False, f"unknown requirement {k!r}"


def active_lsms() -> tuple[list[str], str]:
    """The kernel's active LSMs, or ([], why they could not be read)."""
    try:
        with open(LSM_LIST) as f:
            return f.read().strip().split(","), ""
    except OSError as e:
        return [], e.strerror or str(e)


def unavailable(program_types: tuple[str, ...]) -> str | None:
    """Why this kernel cannot run programs of these types at all (a mitigation's), or None."""
    for t in program_types:
        if t == "lsm":
            ok, reason = _answer(Requirement("lsm"))
            if not ok:
                return reason
        # libbpf cannot probe tracing programs without a target
        if t != "tracing" and t in libbpf.known_prog_types() and not libbpf.probe_prog_type(t):
            return f"this kernel does not allow BPF programs of type {t!r}"
    return None


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
