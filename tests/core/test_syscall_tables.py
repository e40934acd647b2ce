"""The syscall decoder's tables (core/decoders/syscalls_<arch>.py) are what
scripts/gen_syscalls.py makes from the kernel headers, and they name the syscalls right."""
from __future__ import annotations

import importlib.util
import os
from pathlib import Path

import pytest

from core.decoders import DECODERS, FieldKind
from core.decoders.kernel import syscall_table

ROOT = Path(__file__).resolve().parents[2]


def generator():
    spec = importlib.util.spec_from_file_location("gen_syscalls", ROOT / "scripts" / "gen_syscalls.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_regenerating_gives_the_committed_tables(capsys):
    """Fails when a header or scripts/syscalls-after-6.1.tbl changed and nobody regenerated."""
    assert generator().main(["--check"]) == 0, capsys.readouterr().err


def test_the_check_sees_a_stale_table(tmp_path, monkeypatch):
    gen = generator()
    monkeypatch.setattr(gen, "OUT_DIR", tmp_path)
    monkeypatch.setattr(gen, "ROOT", tmp_path)
    assert gen.main([]) == 0
    stale = tmp_path / "syscalls_x86_64.py"
    stale.write_text(stale.read_text().replace('    59: "execve",\n', ""))
    assert gen.main(["--check"]) == 1


X86_64 = {0: "read", 1: "write", 2: "open", 39: "getpid", 56: "clone", 57: "fork", 59: "execve",
          60: "exit", 231: "exit_group", 257: "openat", 322: "execveat", 334: "rseq",
          424: "pidfd_send_signal", 435: "clone3", 450: "set_mempolicy_home_node",
          451: "cachestat", 462: "mseal", 469: "file_setattr"}
ARM64 = {0: "io_setup", 25: "fcntl", 56: "openat", 63: "read", 64: "write", 79: "newfstatat",
         93: "exit", 94: "exit_group", 172: "getpid", 220: "clone", 221: "execve", 222: "mmap",
         281: "execveat", 435: "clone3", 447: "memfd_secret", 451: "cachestat", 469: "file_setattr"}


@pytest.mark.parametrize("machine, known", [("x86_64", X86_64), ("aarch64", ARM64)])
def test_known_numbers(machine, known):
    table = syscall_table(machine)
    assert {n: table.get(n) for n in known} == known
    # Numbers no kernel gave out: x86_64's hole between rseq and the shared numbering.
    assert 335 not in table and 423 not in table and 1000 not in table


def test_the_decoder_uses_this_machines_table():
    field = FieldKind("int", 8, signed=True)
    table = syscall_table(os.uname().machine)
    if not table:
        pytest.skip(f"no syscall table for {os.uname().machine}")
    assert [DECODERS["syscall"].decode(n, field, {}) for n in sorted(table)[:3]] == \
        [table[n] for n in sorted(table)[:3]]
    assert DECODERS["syscall"].decode(99_999, field, {}) == "syscall_99999"
    assert syscall_table("sparc64") == {}
