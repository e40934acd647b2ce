"""VM kernel artefacts on synthetic bytes: vmlinux extraction, module order, newc archives."""
from __future__ import annotations

import lzma
import subprocess

import pytest

from orchestrator.lab import LabError
from orchestrator.lab.kernel import CHR, DIR, FILE, Entry, extract_vmlinux, load_order, \
    module_bytes, module_name, newc_archive, parse_modules_dep


def test_extract_vmlinux_skips_false_magic():
    elf = b"\x7fELF" + bytes(range(256)) * 40
    fake_magic = b"\xfd7zXZ\x00not really xz"
    bzimage = b"MZ" + b"\0" * 100 + fake_magic + lzma.compress(elf, format=lzma.FORMAT_XZ) + b"trailer"
    assert extract_vmlinux(bzimage) == elf


def test_extract_vmlinux_zstd_payload():
    """bookworm-backports' 6.12 vmlinuz is zstd; trailing bytes after the frame are ignored."""
    elf = b"\x7fELF" + bytes(range(256)) * 40
    zst = subprocess.run(["zstd", "-cq"], input=elf, capture_output=True, check=True).stdout
    bzimage = b"MZ" + b"\0" * 100 + b"\x28\xb5\x2f\xfd junk" + zst + b"trailer"
    assert extract_vmlinux(bzimage) == elf


def test_extract_vmlinux_needs_an_elf():
    with pytest.raises(LabError, match="no xz- or zstd-compressed ELF"):
        extract_vmlinux(b"MZ" + lzma.compress(b"not an elf", format=lzma.FORMAT_XZ))


def test_module_bytes_uncompresses_ko_xz():
    data = b"\x7fELF module"
    assert module_bytes("kernel/fs/ext4/ext4.ko.xz", lzma.compress(data)) == data
    assert module_bytes("kernel/fs/ext4/ext4.ko", data) == data


MODULES_DEP = """\
kernel/fs/ext4/ext4.ko: kernel/lib/crc16.ko kernel/fs/mbcache.ko kernel/fs/jbd2/jbd2.ko
kernel/lib/crc16.ko:
kernel/fs/mbcache.ko:
kernel/fs/jbd2/jbd2.ko:
kernel/drivers/virtio/virtio.ko:
kernel/drivers/virtio/virtio_ring.ko:
kernel/drivers/block/virtio_blk.ko: kernel/drivers/virtio/virtio.ko kernel/drivers/virtio/virtio_ring.ko
kernel/drivers/virtio/virtio_pci.ko: kernel/drivers/virtio/virtio.ko kernel/drivers/virtio/virtio_ring.ko
kernel/crypto/crc32c_generic.ko:
"""


def test_load_order_dependencies_first_each_once():
    order = load_order(["virtio_pci", "virtio-blk", "crc32c_generic", "ext4"],
                       parse_modules_dep(MODULES_DEP), builtin={"crc32c_generic"})
    assert [module_name(p) for p in order] == [
        "virtio", "virtio_ring", "virtio_pci", "virtio_blk", "crc16", "mbcache", "jbd2", "ext4"]


def test_load_order_unknown_module():
    with pytest.raises(LabError, match="nosuch"):
        load_order(["nosuch"], parse_modules_dep(MODULES_DEP), set())


def _parse_newc(blob: bytes) -> list[tuple[str, int, bytes, tuple[int, int]]]:
    out, at = [], 0
    while True:
        assert blob[at:at + 6] == b"070701"
        f = [int(blob[at + 6 + 8 * i: at + 14 + 8 * i], 16) for i in range(13)]
        namesize, filesize = f[11], f[6]
        name = blob[at + 110: at + 110 + namesize - 1].decode()
        at = (at + 110 + namesize + 3) & ~3
        data = blob[at: at + filesize]
        at = (at + filesize + 3) & ~3
        if name == "TRAILER!!!":
            return out
        out.append((name, f[1], data, (f[9], f[10])))


def test_newc_archive_round_trip():
    entries = [Entry("bin", DIR | 0o755), Entry("dev/console", CHR | 0o600, rdev=(5, 1)),
               Entry("/init", FILE | 0o755, b"#!/bin/sh\necho hi\n"), Entry("odd", FILE | 0o644, b"x")]
    blob = newc_archive(entries)
    assert len(blob) % 4 == 0
    assert _parse_newc(blob) == [("bin", DIR | 0o755, b"", (0, 0)),
                                 ("dev/console", CHR | 0o600, b"", (5, 1)),
                                 ("init", FILE | 0o755, b"#!/bin/sh\necho hi\n", (0, 0)),
                                 ("odd", FILE | 0o644, b"x", (0, 0))]
