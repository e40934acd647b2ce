"""Decoders backed by kernel knowledge: syscall, errno, ksym.

Syscall names come from the generated per-architecture tables (syscalls_<arch>.py, made by
scripts/gen_syscalls.py); kernel symbols from a SymbolTable that the exporter hands in with
use_symbols() (exporter/kallsyms.py reads /proc/kallsyms). Nothing here loads a library or
reads a file: a lookup table is not worth mapping libbcc and LLVM into the exporter."""
from __future__ import annotations

import bisect
import errno
import functools
import importlib
import os
from collections.abc import Mapping, Sequence
from typing import Callable

from .base import FieldKind, FunctionDecoder, expect_integer, unsigned

# os.uname().machine -> the suffix of the generated table.
ARCHES = {"x86_64": "x86_64", "aarch64": "arm64", "arm64": "arm64"}


@functools.cache
def syscall_table(machine: str | None = None) -> Mapping[int, str]:
    """Number -> name for this machine's architecture (empty for one without a table)."""
    arch = ARCHES.get(machine or os.uname().machine)
    if arch is None:
        return {}
    return importlib.import_module(f"{__package__}.syscalls_{arch}").SYSCALLS


def decode_syscall(value: int, field: FieldKind, options: Mapping) -> str:
    return syscall_table().get(value) or f"syscall_{value}"


def decode_errno(value: int, field: FieldKind, options: Mapping) -> str:
    # Kernel return values carry errors as -ENOENT; both signs mean the same error.
    return errno.errorcode.get(abs(value), str(value))


class SymbolTable:
    """Kernel symbols by start address: lookup(address) names the symbol whose code or data
    holds it, the nearest start at or below (as bcc's ksym and perf do). Names are kept in
    one bytes blob with offsets, not 100k+ str objects: ~14 bytes a symbol instead of ~90."""

    def __init__(self, addresses: Sequence[int], names: bytes, offsets: Sequence[int]):
        self.addresses = addresses   # sorted ascending
        self.names = names           # the names, back to back
        self.offsets = offsets       # names[offsets[i]:offsets[i + 1]] is symbol i's name

    def __len__(self) -> int:
        return len(self.addresses)

    def lookup(self, address: int) -> str | None:
        i = bisect.bisect_right(self.addresses, address) - 1
        if i < 0:
            return None
        return self.names[self.offsets[i]:self.offsets[i + 1]].decode("ascii", "replace")


SymbolLookup = Callable[[int], "str | None"]
_symbols: SymbolLookup | None = None


def use_symbols(lookup: SymbolLookup | None) -> None:
    """Where ksym labels come from (exporter/kallsyms.py installs its table); None: none, every
    address decodes as hex."""
    global _symbols
    _symbols = lookup


def kernel_symbol(address: int) -> str:
    name = _symbols(address) if _symbols is not None else None
    return name or hex(address)


def decode_ksym(value: int, field: FieldKind, options: Mapping) -> str:
    return kernel_symbol(unsigned(value, field.size))


SYSCALL = FunctionDecoder("syscall", expect_integer(2, 4, 8), decode_syscall)
ERRNO = FunctionDecoder("errno", expect_integer(), decode_errno)
KSYM = FunctionDecoder("ksym", expect_integer(8), decode_ksym)
