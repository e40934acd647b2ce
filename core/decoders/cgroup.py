"""cgroup decoder: cgroup v2 id (what bpf_get_current_cgroup_id() returns) → path.

A cgroup v2 id is the inode number of its directory in the cgroup2 mount, so
ids are resolved by walking that mount. Ids are never reused, so resolved names
are kept across walks: a label must not change name while its series lives."""
from __future__ import annotations

import os
import re
import time
from collections import OrderedDict
from collections.abc import Callable, Mapping

from .base import FieldKind, FunctionDecoder, expect_integer, unsigned

MOUNTINFO = "/proc/self/mountinfo"


def _unescape_mount_path(path: str) -> str:
    # mountinfo escapes space, tab, newline and backslash as \ooo.
    return re.sub(r"\\([0-7]{3})", lambda octal: chr(int(octal[1], 8)), path)


def find_cgroup2_mount(mountinfo: str = MOUNTINFO) -> str | None:
    try:
        with open(mountinfo, encoding="utf-8", errors="surrogateescape") as lines:
            for line in lines:
                fields, _, tail = line.partition(" - ")
                if tail.split(" ", 1)[0] == "cgroup2":
                    return _unescape_mount_path(fields.split(" ")[4])
    except OSError:
        pass
    return None


def walk_cgroup_ids(mount: str) -> dict[int, str]:
    """Every cgroup below the mount, id → path relative to the mount ("/" is the root)."""
    ids = {os.stat(mount).st_ino: "/"}
    for directory, subdirs, _ in os.walk(mount, onerror=lambda error: None):
        for name in subdirs:
            path = os.path.join(directory, name)
            try:
                ids[os.stat(path).st_ino] = "/" + os.path.relpath(path, mount)
            except OSError:  # removed during the walk
                continue
    return ids


class CgroupPaths:
    """Bounded id → path cache; a miss re-walks at most once per rewalk_seconds,
    so ids of cgroups outside this mount don't cost a walk per lookup."""

    def __init__(self, mount: str | None = None, max_entries: int = 65536,
                 rewalk_seconds: float = 10.0, clock: Callable[[], float] = time.monotonic):
        self._mount = mount
        self._paths: OrderedDict[int, str] = OrderedDict()
        self._max_entries = max_entries
        self._rewalk_seconds = rewalk_seconds
        self._clock = clock
        self._last_walk: float | None = None
        self.walks = 0

    def path(self, cgroup_id: int) -> str:
        if cgroup_id not in self._paths and self._may_walk():
            self._walk()
        found = self._paths.get(cgroup_id)
        if found is None:
            return str(cgroup_id)
        self._paths.move_to_end(cgroup_id)
        return found

    def _may_walk(self) -> bool:
        now = self._clock()
        if self._last_walk is not None and now - self._last_walk < self._rewalk_seconds:
            return False
        self._last_walk = now
        return True

    def _walk(self) -> None:
        self.walks += 1
        mount = self._mount or find_cgroup2_mount()
        if mount is None:
            return
        try:
            self._paths.update(walk_cgroup_ids(mount))
        except OSError:
            return
        while len(self._paths) > self._max_entries:
            self._paths.popitem(last=False)


_PATHS = CgroupPaths()


def decode_cgroup(value: int, field: FieldKind, options: Mapping) -> str:
    return _PATHS.path(unsigned(value, field.size))


CGROUP = FunctionDecoder("cgroup", expect_integer(8), decode_cgroup)
