"""Kernels without BTF (exporter/btf_source.py): an external BTF file per kernel release from the
config, or a clear error saying the host needs one.

This kernel has BTF; BPFLEET_KERNEL_BTF (the documented test hook) points the exporter's look-up
at a missing path to play one without. The external file is a real BTF file: a copy of this
kernel's /sys/kernel/btf/vmlinux, which libbpf then uses for CO-RE (btf_custom_path)."""
from __future__ import annotations

import os
import shutil

import pytest

from harness import deadline_poll

RELEASE = os.uname().release


@pytest.fixture
def no_kernel_btf(monkeypatch, tmp_path):
    monkeypatch.setenv("BPFLEET_KERNEL_BTF", str(tmp_path / "no-such-vmlinux"))


@pytest.fixture
def btf_copy(tmp_path):
    path = tmp_path / "btf" / f"{RELEASE}.btf"
    path.parent.mkdir()
    shutil.copy("/sys/kernel/btf/vmlinux", path)
    return path


def _failed(e, name):
    return deadline_poll(lambda: (p := e.program(name)) and p["state"] == "failed" and p, 10,
                         what=f"{name} failed")


def test_external_btf_file_loads_co_re_programs(exporters, no_kernel_btf, btf_copy):
    e = exporters({"tcp": {}, "syscalls": {}, "biolatency": {}},
                  extra_config=f'[btf]\nfiles = {{ "{RELEASE}" = "{btf_copy}" }}\n')
    e.wait_attached("tcp", "syscalls")
    st = e.status()
    assert st["btf"] == {"kernel": False, "external_file": str(btf_copy), "error": None}
    tcp = e.program("tcp")
    v = {x["variant"]: x for x in tcp["variants"]}
    assert tcp["variant"] == "tracepoint"
    assert "no BTF of its own" in v["fentry"]["reason"], v
    for _ in range(100):
        os.getppid()
    # The series appears with the first getppid counted: absent means "not yet" while waiting.
    deadline_poll(lambda: e.metrics().value_or_zero("syscalls_total", syscall="getppid") >= 100, 10,
                  what="syscalls counted")
    # tp_btf and fentry attach by the kernel's own BTF ids: no external file can stand in.
    bio = _failed(e, "biolatency")
    assert "no variant works on this kernel" in bio["error"] and "no BTF of its own" in bio["error"], bio


def test_external_btf_dir(exporters, no_kernel_btf, btf_copy):
    e = exporters({"syscalls": {}}, extra_config=f'[btf]\ndir = "{btf_copy.parent}"\n')
    e.wait_attached("syscalls")
    assert e.status()["btf"]["external_file"] == str(btf_copy)


def test_no_btf_and_no_file_says_what_the_host_needs(exporters, no_kernel_btf):
    e = exporters({"syscalls": {}})
    p = _failed(e, "syscalls")
    assert f"this host's kernel {RELEASE} has no BTF" in p["error"], p
    assert "[btf] files" in p["error"] and "btfhub" in p["error"] and "libbpf:" not in p["error"]
    assert p["error"].startswith(f"{e.config_path}: btf: ")


def test_missing_external_file_names_the_field(exporters, tmp_path):
    missing = tmp_path / "gone.btf"
    e = exporters({"syscalls": {}}, extra_config=f'[btf]\nfiles = {{ "{RELEASE}" = "{missing}" }}\n')
    p = _failed(e, "syscalls")
    assert f"btf.files.{RELEASE}: external BTF file {missing}" in p["error"] and "no such file" in p["error"], p


def test_a_file_that_is_not_btf(exporters, tmp_path):
    junk = tmp_path / "junk.btf"
    junk.write_bytes(b"not BTF at all" * 100)
    e = exporters({"syscalls": {}}, extra_config=f'[btf]\nfiles = {{ "{RELEASE}" = "{junk}" }}\n')
    p = _failed(e, "syscalls")
    assert "is not BTF" in p["error"], p


def test_btf_of_another_kernel_is_named(exporters, registry, tmp_path):
    """A real BTF file that does not describe this kernel (the tcp object's own BTF): libbpf's
    CO-RE relocations fail against it, which shows the file is what libbpf used."""
    wrong = tmp_path / "wrong.btf"
    shutil.copy(next(registry.glob("tcp/*/tcp.bpf.o")), wrong)
    e = exporters({"biolatency": {}}, extra_config=f'[btf]\nfiles = {{ "{RELEASE}" = "{wrong}" }}\n')
    p = _failed(e, "biolatency")
    assert f"CO-RE relocations failed against the external BTF file {wrong}" in p["error"], p
