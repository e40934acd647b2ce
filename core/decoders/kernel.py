"""Decoders backed by kernel knowledge: syscall, errno, ksym.

bcc is imported lazily: importing it loads libbcc, which a process that never
decodes these labels should not pay for, and tests must run without it."""
from __future__ import annotations

import errno
import functools
from collections.abc import Mapping

from .base import FieldKind, FunctionDecoder, expect_integer, unsigned


@functools.cache
def _bcc_syscall_name():
    try:
        from bcc.syscall import syscall_name
    except Exception:  # bcc missing, or its import-time ausyscall probe failed
        return None
    return syscall_name


# x86_64 syscalls newer than the table in Debian 12's bcc (0.26), from the kernel's
# arch/x86/entry/syscalls/syscall_64.tbl.
NEWER_SYSCALLS = {
    434: "pidfd_open", 435: "clone3", 436: "close_range", 437: "openat2", 438: "pidfd_getfd",
    439: "faccessat2", 440: "process_madvise", 441: "epoll_pwait2", 442: "mount_setattr",
    443: "quotactl_fd", 444: "landlock_create_ruleset", 445: "landlock_add_rule",
    446: "landlock_restrict_self", 447: "memfd_secret", 448: "process_mrelease", 449: "futex_waitv",
    450: "set_mempolicy_home_node", 451: "cachestat", 452: "fchmodat2", 453: "map_shadow_stack",
    454: "futex_wake", 455: "futex_wait", 456: "futex_requeue", 457: "statmount", 458: "listmount",
    459: "lsm_get_self_attr", 460: "lsm_set_self_attr", 461: "lsm_list_modules", 462: "mseal",
    463: "setxattrat", 464: "getxattrat", 465: "listxattrat", 466: "removexattrat",
    467: "open_tree_attr",
}


def decode_syscall(value: int, field: FieldKind, options: Mapping) -> str:
    lookup = _bcc_syscall_name()
    name = lookup(value) if lookup else None
    # bcc answers b"[unknown: N]" rather than failing.
    if not name or name.startswith(b"["):
        return NEWER_SYSCALLS.get(value, f"syscall_{value}")
    return name.decode("ascii", "replace")


def decode_errno(value: int, field: FieldKind, options: Mapping) -> str:
    # Kernel return values carry errors as -ENOENT; both signs mean the same error.
    return errno.errorcode.get(abs(value), str(value))


@functools.cache
def _bcc_ksym():
    try:
        from bcc import BPF
    except Exception:
        return None
    return BPF.ksym


@functools.lru_cache(maxsize=4096)
def kernel_symbol(address: int) -> str:
    lookup = _bcc_ksym()
    name = lookup(address) if lookup else None
    if not name or name.startswith(b"["):  # b"[unknown]"
        return hex(address)
    return name.decode("ascii", "replace")


def decode_ksym(value: int, field: FieldKind, options: Mapping) -> str:
    return kernel_symbol(unsigned(value, field.size))


SYSCALL = FunctionDecoder("syscall", expect_integer(2, 4, 8), decode_syscall)
ERRNO = FunctionDecoder("errno", expect_integer(), decode_errno)
KSYM = FunctionDecoder("ksym", expect_integer(8), decode_ksym)
