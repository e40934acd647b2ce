"""Block device decoders: devt (major:minor) and disk (name from sysfs)."""
from __future__ import annotations

import functools
from collections.abc import Mapping

from .base import FieldKind, FunctionDecoder, expect_integer, unsigned

# The kernel-internal dev_t layout (include/linux/kdev_t.h), which is what BPF
# programs see, not the userspace one glibc's major()/minor() decode.
MINOR_BITS = 20


def split_devt(value: int) -> tuple[int, int]:
    return value >> MINOR_BITS, value & ((1 << MINOR_BITS) - 1)


def decode_devt(value: int, field: FieldKind, options: Mapping) -> str:
    major, minor = split_devt(unsigned(value, field.size))
    return f"{major}:{minor}"


# Misses are cached too: a dev_t seen in a BPF map existed when it was seen, and
# re-reading sysfs per scrape for a vanished device buys nothing.
@functools.lru_cache(maxsize=1024)
def disk_name(major: int, minor: int, sys_root: str = "/sys") -> str:
    try:
        with open(f"{sys_root}/dev/block/{major}:{minor}/uevent", encoding="utf-8") as uevent:
            for line in uevent:
                key, _, value = line.rstrip("\n").partition("=")
                if key == "DEVNAME" and value:
                    return value
    except OSError:
        pass
    return f"{major}:{minor}"


def decode_disk(value: int, field: FieldKind, options: Mapping) -> str:
    return disk_name(*split_devt(unsigned(value, field.size)))


DEVT = FunctionDecoder("devt", expect_integer(4), decode_devt)
DISK = FunctionDecoder("disk", expect_integer(4), decode_disk)
