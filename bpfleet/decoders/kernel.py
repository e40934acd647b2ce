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


def decode_syscall(value: int, field: FieldKind, options: Mapping) -> str:
    lookup = _bcc_syscall_name()
    name = lookup(value) if lookup else None
    # bcc answers b"[unknown: N]" rather than failing.
    if not name or name.startswith(b"["):
        return f"syscall_{value}"
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
