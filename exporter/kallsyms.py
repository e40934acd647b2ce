"""Kernel symbols for the ksym decoder, read from /proc/kallsyms (as ebpf_exporter's kallsyms
package does) into core's SymbolTable: no bcc, no libbcc/LLVM mapped for a lookup table.

Read lazily, once, when a ksym label is first decoded, or up front by load() while the process
still has CAP_SYSLOG: without it the kernel shows every address as 0 (kptr_restrict), and a
read that shows nothing keeps the table we have. Read again when /proc/modules changes (a new
module's symbols), checked at most every MODULES_CHECK_SECONDS and only when a label is decoded."""
from __future__ import annotations

import threading
import time
from array import array
from collections.abc import Iterable

from core.decoders import kernel

KALLSYMS = "/proc/kallsyms"
MODULES = "/proc/modules"
MODULES_CHECK_SECONDS = 10.0


def parse(lines: Iterable[bytes]) -> kernel.SymbolTable:
    """kallsyms lines (`address type name [module]`) -> a SymbolTable; zero addresses (hidden
    or absolute symbols) are left out."""
    entries = []
    for line in lines:
        fields = line.split()
        if len(fields) < 3:
            continue
        try:
            address = int(fields[0], 16)
        except ValueError:
            continue
        if address:
            entries.append((address, fields[2]))
    entries.sort()
    offsets = array("Q", [0])
    for _, name in entries:
        offsets.append(offsets[-1] + len(name))
    return kernel.SymbolTable(array("Q", (a for a, _ in entries)),
                              b"".join(name for _, name in entries), offsets)


def _read(path: str) -> bytes | None:
    try:
        with open(path, "rb") as f:
            return f.read()
    except OSError:
        return None


class Kallsyms:
    def __init__(self, path: str = KALLSYMS, modules: str = MODULES, clock=time.monotonic):
        self.path, self.modules_path, self.clock = path, modules, clock
        self.table: kernel.SymbolTable | None = None
        self.loads = 0
        self._modules: bytes | None = None
        self._checked = float("-inf")
        self._lock = threading.Lock()

    def load(self) -> None:
        """Read the symbols now (before privileges are dropped)."""
        with self._lock:
            self._modules = _read(self.modules_path)
            self._checked = self.clock()
            self._load()

    def _load(self) -> None:
        try:
            with open(self.path, "rb") as f:
                table = parse(f)
        except OSError:
            return
        self.loads += 1
        if len(table) or self.table is None:
            self.table = table

    def _refresh(self) -> None:
        now = self.clock()
        if now - self._checked < MODULES_CHECK_SECONDS:
            return
        with self._lock:
            self._checked = now
            modules = _read(self.modules_path)
            if self.loads == 0 or modules != self._modules:
                self._modules = modules
                self._load()

    def lookup(self, address: int) -> str | None:
        self._refresh()
        return self.table.lookup(address) if self.table is not None else None


def present(names: Iterable[str], path: str = KALLSYMS) -> set[str]:
    """Which of `names` are kernel symbols (kprobe targets), in one pass over the file that
    keeps nothing else: a set of all ~120k names would hold ~12 MB for the process's life."""
    wanted = {n.encode() for n in names}
    found: set[str] = set()
    try:
        with open(path, "rb") as f:
            for line in f:
                fields = line.split(None, 3)
                if len(fields) >= 3 and fields[2] in wanted:
                    found.add(fields[2].decode())
    except OSError:
        pass
    return found


SYMBOLS = Kallsyms()


def install(symbols: Kallsyms = SYMBOLS) -> Kallsyms:
    """Make ksym labels resolve through `symbols` (nothing is read until one is decoded)."""
    kernel.use_symbols(symbols.lookup)
    return symbols
