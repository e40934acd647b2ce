"""Kernel artefacts for the VMs, as pure functions on bytes and text (zstd aside, which Python
3.11 lacks: the `zstd` tool): the uncompressed vmlinux inside a vmlinuz, the load order of a
module set from modules.dep, and a newc initramfs."""
from __future__ import annotations

import lzma
from dataclasses import dataclass

from orchestrator.lab.system import LabError, run

XZ_MAGIC = b"\xfd7zXZ\x00"
ZSTD_MAGIC = b"\x28\xb5\x2f\xfd"


def _unxz(data: bytes) -> bytes:
    return lzma.LZMADecompressor(format=lzma.FORMAT_XZ).decompress(data)


def _unzstd(data: bytes) -> bytes:
    # Exit 1 on the bytes after the frame ("unsupported format"); the frame's output is whole.
    return run("zstd", "-dcq", input=data, text=False, check=False).stdout


def extract_vmlinux(vmlinuz: bytes) -> bytes:
    """The ELF kernel inside a bzImage whose payload is xz (bookworm's 6.1) or zstd (6.12 from
    bookworm-backports), like the kernel tree's scripts/extract-vmlinux: try every magic until
    one decompresses to an ELF."""
    for magic, decompress in ((XZ_MAGIC, _unxz), (ZSTD_MAGIC, _unzstd)):
        at = vmlinuz.find(magic)
        while at >= 0:
            try:
                out = decompress(vmlinuz[at:])
                if out[:4] == b"\x7fELF":
                    return out
            except lzma.LZMAError:
                pass
            at = vmlinuz.find(magic, at + 1)
    raise LabError("no xz- or zstd-compressed ELF kernel found in the vmlinuz")


def module_bytes(path: str, data: bytes) -> bytes:
    """A module file as busybox insmod needs it: uncompressed (6.12's are .ko.xz)."""
    return _unxz(data) if path.endswith(".ko.xz") else data


def parse_modules_dep(text: str) -> dict[str, list[str]]:
    """modules.dep: `kernel/a/b.ko: kernel/c.ko kernel/d.ko` -> {path: [dependency paths]}."""
    deps = {}
    for line in text.splitlines():
        if ":" in line:
            mod, rest = line.split(":", 1)
            deps[mod.strip()] = rest.split()
    return deps


def module_name(path: str) -> str:
    base = path.rsplit("/", 1)[-1]
    for ext in (".ko.xz", ".ko.zst", ".ko.gz", ".ko"):
        if base.endswith(ext):
            base = base[: -len(ext)]
    return base.replace("-", "_")


def load_order(wanted: list[str], deps: dict[str, list[str]], builtin: set[str]) -> list[str]:
    """Module paths to insmod, dependencies first, each once; built-in modules are skipped and
    an unknown one is an error."""
    by_name = {module_name(p): p for p in deps}
    order: list[str] = []

    def visit(path: str) -> None:
        if path in order:
            return
        for d in deps.get(path, []):
            visit(d)
        order.append(path)

    for name in wanted:
        name = name.replace("-", "_")
        if name in builtin:
            continue
        if name not in by_name:
            raise LabError(f"kernel module {name}: neither in modules.dep nor built in")
        visit(by_name[name])
    return order


@dataclass(frozen=True)
class Entry:
    path: str                 # without leading "/"
    mode: int                 # full st_mode: file type bits | permissions
    data: bytes = b""
    rdev: tuple[int, int] = (0, 0)


DIR, FILE, CHR = 0o040000, 0o100000, 0o020000


def newc_archive(entries: list[Entry]) -> bytes:
    """A cpio archive in the "newc" format the kernel unpacks as an initramfs."""
    out = bytearray()

    def add(name: str, mode: int, data: bytes, rdev: tuple[int, int], ino: int) -> None:
        nb = name.encode() + b"\0"
        fields = [ino, mode, 0, 0, 1, 0, len(data), 0, 0, rdev[0], rdev[1], len(nb), 0]
        out.extend(b"070701" + b"".join(b"%08X" % f for f in fields) + nb)
        out.extend(b"\0" * (-len(out) % 4))
        out.extend(data)
        out.extend(b"\0" * (-len(out) % 4))

    for ino, e in enumerate(entries, start=1):
        add(e.path.lstrip("/"), e.mode, e.data, e.rdev, ino)
    add("TRAILER!!!", 0, b"", (0, 0), 0)
    return bytes(out)
