"""What the running exporter carries: no bcc (libbcc + LLVM + clang, ~60 MB of RSS) unless a
bcc-source program really compiles here; syscall names from the generated table, not from bcc.
The memory and idle-CPU numbers themselves are a bench (bench/bench_rss.py), not a test."""
from __future__ import annotations

import os

from core.decoders.kernel import syscall_table
from harness import BUILTINS, LOADABLE, deadline_poll, is_bcc_program, loads_here

HEAVY = ("libbcc", "libLLVM", "libclang")


def heavy_mappings(pid: int) -> list[str]:
    with open(f"/proc/{pid}/maps") as f:
        return sorted({line.split()[-1] for line in f if any(h in line for h in HEAVY)})


def test_the_builtins_map_no_bcc(exporters):
    """Every built-in the default config runs; a bcc-source one that would compile here is left
    out (it needs bcc, rightly). Without kernel headers (this machine) that is none of them:
    disksnoop and tcpv4connect are enabled, reported not_applicable, and still load no bcc."""
    programs = [n for n in BUILTINS if not (is_bcc_program(n) and loads_here(n))]
    assert "syscalls" in programs
    e = exporters({n: {} for n in programs})
    e.wait_attached(*[n for n in programs if n in LOADABLE])
    pid = e.proc.pid
    for _ in range(100):
        os.getppid()
    deadline_poll(lambda: e.metrics().value_or_zero("syscalls_total", syscall="getppid") >= 100, 10,
                  what='syscalls_total{syscall="getppid"} >= 100')   # others call it too: >=
    names = e.metrics().label_values("syscalls_total", "syscall")
    assert {"read", "write", "getppid"} <= names, names
    undecoded = {n for n in names if n.startswith("syscall_") and int(n[8:]) in syscall_table()}
    assert not undecoded, f"syscalls with a name in the table exported by number: {undecoded}"
    for _ in range(5):
        e.scrape()
    assert heavy_mappings(pid) == [], f"the exporter mapped bcc: {heavy_mappings(pid)}"
    assert e.status()["pid"] == pid
