"""The racing-insert tests' kit: builds programs/racecount, runs a round of workers against it
and reads what it counted. REPORT collects what the tests measured (conftest prints it)."""
from __future__ import annotations

import os
import struct
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path

from core import btf
from exporter import libbpf
from core import resources
from orchestrator.build import compile_program

PROGRAM_DIR = Path(__file__).resolve().parent / "programs" / "racecount"
KEY_SPACE = 1_000_000      # racecount.bpf.c: 65536 keys of 16 events
REPORT: list[str] = []

# One per CPU, pinned: two workers the scheduler put on one CPU would take turns, not race.
WORKER = r"""
import os, sys
getppid, calls = os.getppid, int(sys.argv[1])
os.sched_setaffinity(0, {int(sys.argv[2])})
sys.stdout.write("ready\n"); sys.stdout.flush()
sys.stdin.readline()                      # go
for _ in range(calls):
    getppid()
"""


@dataclass(frozen=True)
class Round:
    calls: int              # getppid() calls the workers made
    events: int             # ... that the program saw
    keys: int
    shared: int             # the sums of each map's counts
    percpu: int
    globals: dict           # racecount.bpf.c's .bss counters

    def raced(self, which: str) -> int:
        """Events that ran while another CPU inserted their key (helper only)."""
        return self.globals[f"contended_{which}"] - self.keys


def build(out: Path) -> dict[str, Path]:
    """racecount (the helper) and racecount_old (the old pattern). -> stem -> object."""
    built = {}
    for stem in ("racecount", "racecount_old"):
        built[stem] = out / f"{stem}.bpf.o"
        compile_program(PROGRAM_DIR, stem, built[stem], [resources.include_dir()])
    return built


def cpus() -> list[int]:
    """The CPUs this process may run on: one worker each."""
    return sorted(os.sched_getaffinity(0))


def calls_each(workers: int) -> int:
    return min(200_000, KEY_SPACE // workers)


def run_round(obj_path: Path, cpu_list: list[int]) -> Round:
    """Load the object (empty maps), count a worker per CPU making calls_each() getppid() calls,
    all released at once, and read what was counted."""
    n = calls_each(len(cpu_list))
    procs = [subprocess.Popen([sys.executable, "-c", WORKER, str(n), str(cpu)], stdin=subprocess.PIPE,
                              stdout=subprocess.PIPE, text=True) for cpu in cpu_list]
    try:
        with libbpf.BpfObject(str(obj_path)) as obj:
            obj.load()
            for p in procs:
                assert p.stdout.readline() == "ready\n"
                libbpf.update(obj.map_fd("targets"), struct.pack("<I", p.pid), b"\1")
            obj.attach_all()
            for p in procs:
                p.stdin.write("go\n")
                p.stdin.flush()
            for p in procs:
                assert p.wait(60) == 0
            obj.detach_all()
            return Round(len(procs) * n, *_read(obj))
    finally:
        for p in procs:
            p.kill()
            p.wait()


def _read(obj: libbpf.BpfObject) -> tuple[int, int, int, int, dict]:
    maps, ncpus = obj.maps(), libbpf.num_possible_cpus()
    sums = {}
    for name, cpus in (("shared_counts", 1), ("percpu_counts", ncpus)):
        info = maps[name]
        reader = libbpf.MapReader(obj.map_fd(name), info.key_size, info.value_size, info.max_entries, cpus)
        _keys, values, n = reader.read()
        sums[name] = (n, sum(v for (v,) in struct.iter_unpack("<Q", values)))
    bss = obj.section_map(".bss")
    raw = libbpf.lookup(obj.map_fd(bss), b"\0\0\0\0", maps[bss].value_size)
    glob = {name: int.from_bytes(raw[off:off + 8], "little")
            for name, (off, _t) in btf.datasec_vars(obj.btf_records(), ".bss").items()}
    assert sums["shared_counts"][0] == sums["percpu_counts"][0], "both maps got the same keys"
    return glob["events"], sums["shared_counts"][0], sums["shared_counts"][1], sums["percpu_counts"][1], glob
