"""Which BTF describes the running kernel: its own (/sys/kernel/btf/vmlinux), or an external
file the config names for this kernel release (btfhub style; docs/operations.md#kernels-without-btf).

CO-RE programs need one or the other. Without either, loading fails here with a message that
says what the host needs, never with libbpf's own relocation errors."""
from __future__ import annotations

import os
from dataclasses import dataclass, field
from pathlib import Path

from core.problems import Problem, ProblemsError

# Test hook (like BPFLEET_FAULT_CRASH_ON_LOAD): where the kernel's own BTF is looked for, so the
# tests can play a kernel without BTF on one that has it. Production never sets it.
KERNEL_BTF_ENV = "BPFLEET_KERNEL_BTF"
KERNEL_BTF = "/sys/kernel/btf/vmlinux"


@dataclass(frozen=True)
class BtfConfig:
    """[btf]: external BTF files. files: release -> path; dir: holds <release>.btf."""
    dir: str | None = None
    files: dict = field(default_factory=dict)


def kernel_btf_path() -> str:
    return os.environ.get(KERNEL_BTF_ENV) or KERNEL_BTF


def kernel_has_btf() -> bool:
    return os.path.exists(kernel_btf_path())


def configured_file(cfg: BtfConfig, release: str) -> tuple[str | None, str]:
    """-> (path the config names for `release` or None, the config field that names it)."""
    if release in cfg.files:
        return cfg.files[release], f"btf.files.{release}"
    if cfg.dir:
        return str(Path(cfg.dir) / f"{release}.btf"), "btf.dir"
    return None, "btf"


def resolve(cfg: BtfConfig, config_source: str, release: str | None = None) -> str | None:
    """The external BTF file to load CO-RE programs with on this kernel, or None to use the
    kernel's own. Raises ProblemsError (naming the config field) when the host needs one and
    has none, or the named file is missing or not BTF. A file named for this release wins over
    the kernel's own BTF (the config said so)."""
    from exporter.libbpf.features import btf_file_error
    release = release or os.uname().release
    path, where = configured_file(cfg, release)
    if path is None or (where == "btf.dir" and not os.path.exists(path) and kernel_has_btf()):
        if kernel_has_btf():
            return None
        raise ProblemsError([Problem(config_source, "btf", (
            f"this host's kernel {release} has no BTF ({kernel_btf_path()} is missing), which "
            "CO-RE programs need to load; give the exporter a BTF file for this kernel release: "
            f"[btf] files = {{ \"{release}\" = \"/path/{release}.btf\" }}, or [btf] dir = a "
            f"directory holding {release}.btf (btfhub-archive has them for most distribution "
            "kernels; docs/operations.md#kernels-without-btf)"))])
    if not os.path.isfile(path):
        raise ProblemsError([Problem(config_source, where, f"external BTF file {path} for kernel "
                                     f"{release}: no such file")])
    if (err := btf_file_error(path)) is not None:
        raise ProblemsError([Problem(config_source, where, f"external BTF file {path} for kernel "
                                     f"{release} is not BTF: {err}")])
    return path
