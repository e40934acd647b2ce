"""Run a command the way the systemd unit would confine it, without systemd.

    python sandbox_exec.py [--mdwe] [--caps bpf,perfmon,...] [--syscalls "@system-service bpf"]
                           [--no-new-privs] -- COMMAND...

--mdwe installs the seccomp filter systemd (252, Debian 12) installs for
MemoryDenyWriteExecute=yes: mmap with PROT_WRITE|PROT_EXEC, mprotect/pkey_mprotect with
PROT_EXEC and shmat with SHM_EXEC fail with EPERM. --caps limits the bounding set (and so, for
root, the permitted and effective sets after exec) to the listed capabilities, as
CapabilityBoundingSet= does. --syscalls installs an allow list like SystemCallFilter= with
SystemCallErrorNumber=EPERM and SystemCallArchitectures=native: groups are expanded by
`systemd-analyze syscall-filter`, numbers come from <asm/unistd_64.h>. Used by tests/hardening/test_privileges.py; x86-64 only.
"""
from __future__ import annotations

import ctypes as C
import os
import sys

PR_SET_NO_NEW_PRIVS, PR_SET_SECCOMP, PR_CAPBSET_DROP, PR_CAPBSET_READ = 38, 22, 24, 23
SECCOMP_MODE_FILTER = 2
AUDIT_ARCH_X86_64 = 0xC000003E
NR = {"mmap": 9, "mprotect": 10, "shmat": 30, "pkey_mprotect": 329}
PROT_WRITE, PROT_EXEC, SHM_EXEC = 0x2, 0x4, 0o100000
RET_ALLOW, RET_EPERM = 0x7FFF0000, 0x00050000 | 1
LD_W_ABS, JEQ_K, AND_K, RET_K = 0x20, 0x15, 0x54, 0x06
ARG2 = 16 + 8 * 2          # offsetof(struct seccomp_data, args[2]), low 32 bits (little endian)

CAPS = {"chown": 0, "dac_override": 1, "dac_read_search": 2, "fowner": 3, "fsetid": 4, "kill": 5,
        "setgid": 6, "setuid": 7, "setpcap": 8, "net_bind_service": 10, "net_admin": 12,
        "net_raw": 13, "ipc_lock": 14, "sys_module": 16, "sys_rawio": 17, "sys_chroot": 18,
        "sys_ptrace": 19, "sys_admin": 21, "sys_resource": 24, "mknod": 27, "syslog": 34,
        "perfmon": 38, "bpf": 39}


class SockFilter(C.Structure):
    _fields_ = [("code", C.c_uint16), ("jt", C.c_uint8), ("jf", C.c_uint8), ("k", C.c_uint32)]


class SockFprog(C.Structure):
    _fields_ = [("len", C.c_uint16), ("filter", C.POINTER(SockFilter))]


def mdwe_filter() -> list[tuple[int, int, int, int]]:
    f = [(LD_W_ABS, 0, 0, 4),                       # arch
         (JEQ_K, 1, 0, AUDIT_ARCH_X86_64),
         (RET_K, 0, 0, RET_ALLOW),
         (LD_W_ABS, 0, 0, 0)]                        # syscall number
    checks = [("mmap", PROT_WRITE | PROT_EXEC), ("mprotect", PROT_EXEC),
              ("pkey_mprotect", PROT_EXEC), ("shmat", SHM_EXEC)]
    for name, bits in checks:
        # if nr == name: A = args[2] & bits; if A == bits: EPERM else ALLOW
        f += [(JEQ_K, 0, 5, NR[name]),
              (LD_W_ABS, 0, 0, ARG2),
              (AND_K, 0, 0, bits),
              (JEQ_K, 0, 1, bits),
              (RET_K, 0, 0, RET_EPERM),
              (RET_K, 0, 0, RET_ALLOW)]
    f.append((RET_K, 0, 0, RET_ALLOW))
    return f


def syscall_names(spec: str) -> set[str]:
    """SystemCallFilter= value (allow list) -> syscall names, groups expanded recursively."""
    import subprocess
    out, todo, seen = set(), spec.split(), set()
    while todo:
        item = todo.pop()
        if not item.startswith("@"):
            out.add(item)
            continue
        if item in seen:
            continue
        seen.add(item)
        text = subprocess.run(["systemd-analyze", "syscall-filter", item], check=True,
                              capture_output=True, text=True).stdout
        for line in text.splitlines()[1:]:
            line = line.strip()
            if line and not line.startswith("#"):
                todo.append(line)
    return out


def syscall_numbers(names: set[str], header: str = "/usr/include/x86_64-linux-gnu/asm/unistd_64.h") -> set[int]:
    import re
    table = {m.group(1): int(m.group(2)) for m in
             re.finditer(r"#define __NR_(\w+)\s+(\d+)", open(header).read())}
    return {table[n] for n in names if n in table}


def allow_list_filter(numbers: set[int]) -> list[tuple[int, int, int, int]]:
    nums = sorted(numbers)
    assert 4 + 2 * len(nums) + 1 <= 4096, "BPF_MAXINSNS"
    f = [(LD_W_ABS, 0, 0, 4),
         (JEQ_K, 1, 0, AUDIT_ARCH_X86_64),
         (RET_K, 0, 0, RET_EPERM),              # SystemCallArchitectures=native
         (LD_W_ABS, 0, 0, 0)]
    for n in nums:   # jump offsets are 8 bits: one ALLOW per number, right after its test
        f += [(JEQ_K, 0, 1, n), (RET_K, 0, 0, RET_ALLOW)]
    f.append((RET_K, 0, 0, RET_EPERM))
    return f


def install(prog: list) -> None:
    libc = C.CDLL(None, use_errno=True)
    arr = (SockFilter * len(prog))(*[SockFilter(*i) for i in prog])
    fprog = SockFprog(len(prog), arr)
    if libc.prctl(PR_SET_SECCOMP, SECCOMP_MODE_FILTER, C.byref(fprog), 0, 0) != 0:
        raise SystemExit(f"PR_SET_SECCOMP: {os.strerror(C.get_errno())}")


def main(argv: list[str]) -> None:
    libc = C.CDLL(None, use_errno=True)
    sep = argv.index("--")
    opts, cmd = argv[:sep], argv[sep + 1:]
    if "--caps" in opts:
        keep = {CAPS[c.strip().removeprefix("cap_")] for c in opts[opts.index("--caps") + 1].split(",") if c}
        cap = 0
        while libc.prctl(PR_CAPBSET_READ, cap, 0, 0, 0) >= 0:
            if cap not in keep and libc.prctl(PR_CAPBSET_DROP, cap, 0, 0, 0) != 0:
                raise SystemExit(f"PR_CAPBSET_DROP {cap}: {os.strerror(C.get_errno())}")
            cap += 1
    if any(o in opts for o in ("--no-new-privs", "--mdwe", "--syscalls")):
        if libc.prctl(PR_SET_NO_NEW_PRIVS, 1, 0, 0, 0) != 0:
            raise SystemExit(f"PR_SET_NO_NEW_PRIVS: {os.strerror(C.get_errno())}")
    allowed = None
    if "--syscalls" in opts:   # expand before any filter is in place (systemd-analyze runs)
        allowed = syscall_numbers(syscall_names(opts[opts.index("--syscalls") + 1]))
    if "--mdwe" in opts:
        install(mdwe_filter())
    if allowed is not None:
        install(allow_list_filter(allowed))
    os.execvp(cmd[0], cmd)


if __name__ == "__main__":
    main(sys.argv[1:])
