"""Label decoders: table-driven on synthetic values, plus the real system's
devices, cgroups and kernel symbols where a decoder depends on them."""
from __future__ import annotations

import os
import platform
import sys
import uuid
from array import array

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from core.decoders import DECODERS, FieldKind, default_decoder_name
from core.decoders.cgroup import CgroupPaths, find_cgroup2_mount, walk_cgroup_ids
from core.decoders.devices import disk_name
from core.decoders.kernel import SymbolTable, use_symbols


def u(bits: int) -> FieldKind:
    return FieldKind("int", bits // 8)


def s(bits: int) -> FieldKind:
    return FieldKind("int", bits // 8, signed=True)


def chars(n: int) -> FieldKind:
    return FieldKind("array", n, is_char=True)


def raw(n: int) -> FieldKind:
    return FieldKind("array", n)


def network_order(value: int, size: int) -> int:
    """What a u16/u32 holding `value` in network byte order reads as on this host."""
    return int.from_bytes(value.to_bytes(size, "big"), sys.byteorder)


OP = FieldKind("enum", 4, enum_values={0: "OP_READ", 1: "OP_WRITE"})
SIGNED_ENUM = FieldKind("enum", 4, signed=True, enum_values={-1: "NEG"})
RW = {"decoder": "static", "values": {"0": "read", "1": "write"}}
X86_64 = platform.machine() == "x86_64"

DECODE_CASES = [
    # decoder, field, options, value, expected
    ("uint", u(32), {}, 0, "0"),
    ("uint", u(64), {}, 2**64 - 1, "18446744073709551615"),
    ("uint", s(32), {}, -5, "-5"),
    ("uint", OP, {}, 1, "1"),
    ("hex", u(32), {}, 255, "0xff"),
    ("hex", u(8), {}, 0, "0x0"),
    ("hex", s(16), {}, -1, "0xffff"),
    ("hex", raw(4), {}, b"\x01\x02\xab\xff", "0x0102abff"),
    ("hex", chars(2), {}, b"a\0", "0x6100"),
    ("string", chars(16), {}, b"bash\0\0garbage\0\0\0", "bash"),
    ("string", chars(4), {}, b"full", "full"),
    ("string", chars(4), {}, b"\0abc", ""),
    ("string", chars(4), {}, b"a\xffb\0", "a\ufffdb"),
    ("string", chars(6), {}, "é€".encode(), "é€"),
    ("enum", OP, {}, 1, "OP_WRITE"),
    ("enum", OP, {}, 7, "7"),
    ("enum", SIGNED_ENUM, {}, -1, "NEG"),
    ("static", u(8), RW, 0, "read"),
    ("static", u(8), RW | {"values": {"1": "write"}}, 2, "2"),
    ("static", s(32), {"values": {"-1": "none", "0": "ok"}}, -1, "none"),
    ("static", OP, {"values": {"0": "r"}}, 0, "r"),
    ("errno", s(32), {}, 2, "ENOENT"),
    ("errno", s(32), {}, -2, "ENOENT"),
    ("errno", s(64), {}, -13, "EACCES"),
    ("errno", u(32), {}, 0, "0"),
    ("errno", s(32), {}, -99999, "-99999"),
    ("ksym", u(64), {}, 0, "0x0"),
    ("ksym", u(64), {}, 1, "0x1"),
    ("inet", u(32), {}, network_order(0x7F000001, 4), "127.0.0.1"),
    ("inet", u(32), {}, network_order(0xC0A80A01, 4), "192.168.10.1"),
    ("inet", s(32), {}, network_order(0xFFFFFFFF, 4) - 2**32, "255.255.255.255"),
    ("inet", raw(4), {}, bytes([10, 0, 0, 1]), "10.0.0.1"),
    ("inet", chars(4), {}, bytes([10, 0, 0, 1]), "10.0.0.1"),
    ("inet", raw(16), {}, bytes(15) + b"\x01", "::1"),
    ("inet", raw(16), {}, bytes.fromhex("20010db8000000000000000000000001"), "2001:db8::1"),
    ("inet", raw(16), {}, bytes(10) + b"\xff\xff" + bytes([1, 2, 3, 4]), "::ffff:102:304"),
    ("port", u(16), {}, network_order(80, 2), "80"),
    ("port", u(16), {}, network_order(8080, 2), "8080"),
    ("port", u(16), {}, network_order(65535, 2), "65535"),
    ("port", s(16), {}, -1, "65535"),
    ("devt", u(32), {}, (8 << 20) | 1, "8:1"),
    ("devt", u(32), {}, (259 << 20) | 0xFFFFF, "259:1048575"),
    ("devt", u(32), {}, 0, "0:0"),
    ("disk", u(32), {}, (4095 << 20) | 0xFFFFE, "4095:1048574"),
    ("cgroup", u(64), {}, 2**64 - 3, str(2**64 - 3)),
]

if X86_64:
    DECODE_CASES += [
        ("syscall", u(64), {}, 0, "read"),
        ("syscall", s(64), {}, 257, "openat"),
        ("syscall", u(32), {}, 60, "exit"),
    ]
DECODE_CASES += [
    ("syscall", s(64), {}, 99999, "syscall_99999"),
    ("syscall", s(32), {}, -1, "syscall_-1"),
]


@pytest.mark.parametrize("name, field, options, value, expected", DECODE_CASES)
def test_decode(name, field, options, value, expected):
    decoder = DECODERS[name]
    assert decoder.check(field, options) is None
    assert decoder.decode(value, field, options) == expected


MISFITS = [
    # decoder, field, options, reason
    ("port", chars(16), {}, "expects an integer of 2 bytes, field is char[16]"),
    ("port", u(32), {}, "expects an integer of 2 bytes, field is u32"),
    ("string", u(32), {}, "expects a char array, field is u32"),
    ("string", raw(16), {}, "expects a char array, field is array of 16 bytes"),
    ("inet", u(16), {}, "expects an integer of 4 bytes or an array of 4 or 16 bytes, field is u16"),
    ("inet", raw(8), {}, "expects an integer of 4 bytes or an array of 4 or 16 bytes, field is array of 8 bytes"),
    ("syscall", chars(8), {}, "expects an integer of 2, 4 or 8 bytes, field is char[8]"),
    ("syscall", u(8), {}, "expects an integer of 2, 4 or 8 bytes, field is u8"),
    ("uint", chars(16), {}, "expects an integer, field is char[16]"),
    ("errno", raw(4), {}, "expects an integer, field is array of 4 bytes"),
    ("errno", OP, {}, "expects an integer, field is enum of 4 bytes"),
    ("enum", u(32), {}, "expects an enum, field is u32"),
    ("ksym", u(32), {}, "expects an integer of 8 bytes, field is u32"),
    ("devt", u(64), {}, "expects an integer of 4 bytes, field is u64"),
    ("disk", s(16), {}, "expects an integer of 4 bytes, field is s16"),
    ("cgroup", u(32), {}, "expects an integer of 8 bytes, field is u32"),
    ("static", chars(4), {"values": {"0": "a"}}, "expects an integer, field is char[4]"),
    ("static", u(8), {}, 'expects a non-empty "values" table'),
    ("static", u(8), {"values": {}}, 'expects a non-empty "values" table'),
    ("static", u(8), {"values": ["read"]}, 'expects a non-empty "values" table'),
    ("static", u(8), {"values": {"read": "0"}}, "\"values\" key 'read' is not a decimal integer"),
    ("static", u(8), {"values": {"01": "a"}}, "\"values\" key '01' is not a decimal integer"),
    ("static", u(8), {"values": {"1.5": "a"}}, "\"values\" key '1.5' is not a decimal integer"),
    ("static", u(8), {"values": {1: "a"}}, '"values" key 1 is not a decimal integer'),
    ("static", u(8), {"values": {"256": "a"}}, '"values" key 256 does not fit in u8'),
    ("static", u(8), {"values": {"-1": "a"}}, '"values" key -1 does not fit in u8'),
    ("static", s(8), {"values": {"-129": "a"}}, '"values" key -129 does not fit in s8'),
    ("static", u(8), {"values": {"1": 2}}, '"values" entry 1 must be a string'),
]


@pytest.mark.parametrize("name, field, options, reason", MISFITS)
def test_check_rejects_misfits_with_a_reason(name, field, options, reason):
    assert DECODERS[name].check(field, options).startswith(reason)


@pytest.mark.parametrize("field, expected", [
    (u(32), "uint"),
    (s(64), "uint"),
    (OP, "enum"),
    (chars(16), "string"),
    (raw(16), "hex"),
])
def test_default_decoder_name(field, expected):
    name = default_decoder_name(field)
    assert name == expected
    assert DECODERS[name].check(field, {}) is None


def test_registry_names_match_the_manifest():
    assert set(DECODERS) == {
        "uint", "hex", "string", "enum", "static", "syscall", "errno", "ksym",
        "inet", "port", "devt", "disk", "cgroup",
    }
    assert all(decoder.name == name for name, decoder in DECODERS.items())


def test_field_kind_is_hashable_and_compares_by_value():
    a = FieldKind("enum", 4, enum_values={1: "A"})
    b = FieldKind("enum", 4, enum_values=[(1, "A")])
    assert a == b and hash(a) == hash(b)
    assert a.enum_values[1] == "A"
    assert hash(u(32)) == hash(FieldKind("int", 4))


# ---- the real system -------------------------------------------------------

def real_block_devices() -> list[tuple[int, int, str]]:
    found = []
    for entry in sorted(os.listdir("/sys/dev/block")):
        major, minor = map(int, entry.split(":"))
        with open(f"/sys/dev/block/{entry}/uevent") as uevent:
            names = [line.strip()[len("DEVNAME="):] for line in uevent if line.startswith("DEVNAME=")]
        if names:
            found.append((major, minor, names[0]))
    return found


def test_disk_names_real_block_devices():
    devices = real_block_devices()
    if not devices:
        pytest.skip("no block devices in /sys/dev/block")
    for major, minor, name in devices:
        assert DECODERS["disk"].decode((major << 20) | minor, u(32), {}) == name


def test_disk_name_reads_devname_and_falls_back(tmp_path):
    device = tmp_path / "dev" / "block" / "8:16"
    device.mkdir(parents=True)
    (device / "uevent").write_text("MAJOR=8\nMINOR=16\nDEVNAME=sdb\nDEVTYPE=disk\n")
    assert disk_name(8, 16, str(tmp_path)) == "sdb"
    assert disk_name(8, 17, str(tmp_path)) == "8:17"


def test_ksym_names_the_symbol_that_holds_the_address():
    """Nearest start at or below, as bcc and perf do; without a symbol source, hex."""
    table = SymbolTable(array("Q", [0x1000, 0x1040, 0x2000]), b"_stextschedulevfs_read",
                        array("Q", [0, 6, 14, 22]))
    use_symbols(table.lookup)
    try:
        assert [DECODERS["ksym"].decode(a, u(64), {}) for a in (0x1000, 0x103F, 0x1040, 0x1041,
                                                               0x2000, 2**64 - 1, 0xFFF)] == \
            ["_stext", "_stext", "schedule", "schedule", "vfs_read", "vfs_read", "0xfff"]
        assert DECODERS["ksym"].decode(-1, s(64), {}) == "vfs_read"   # the pointer's bit pattern
    finally:
        use_symbols(None)
    assert DECODERS["ksym"].decode(0x1040, u(64), {}) == "0x1040"


@pytest.fixture
def cgroup2_mount():
    mount = find_cgroup2_mount()
    if mount is None:
        pytest.skip("no cgroup2 mount")
    return mount


def test_cgroup_root_is_slash(cgroup2_mount):
    root_id = os.stat(cgroup2_mount).st_ino
    assert DECODERS["cgroup"].decode(root_id, u(64), {}) == "/"


def test_cgroup_real_subdirectory(cgroup2_mount):
    subdirs = [entry for entry in os.scandir(cgroup2_mount) if entry.is_dir()]
    created = None
    if not subdirs:
        created = os.path.join(cgroup2_mount, f"bpfleet-test-{uuid.uuid4().hex[:8]}")
        try:
            os.mkdir(created)
        except OSError as error:
            pytest.skip(f"no cgroup below {cgroup2_mount} and cannot create one: {error}")
    try:
        path = created or subdirs[0].path
        paths = CgroupPaths(mount=cgroup2_mount)
        assert paths.path(os.stat(path).st_ino) == "/" + os.path.basename(path)
    finally:
        if created:
            os.rmdir(created)


def test_find_cgroup2_mount_unescapes_the_mount_point(tmp_path):
    mountinfo = tmp_path / "mountinfo"
    mountinfo.write_text(
        "31 23 0:28 / /sys/fs/cgroup rw,relatime - tmpfs tmpfs rw,mode=755\n"
        "32 31 0:29 / /sys/fs/cgroup/cpu rw,relatime - cgroup cgroup rw,cpu\n"
        "41 31 0:38 / /my\\040cgroup2 rw,relatime shared:9 - cgroup2 cgroup2 rw\n"
    )
    assert find_cgroup2_mount(str(mountinfo)) == "/my cgroup2"
    mountinfo.write_text("31 23 0:28 / /sys/fs/cgroup rw,relatime - tmpfs tmpfs rw\n")
    assert find_cgroup2_mount(str(mountinfo)) is None


class FakeClock:
    def __init__(self):
        self.now = 1000.0

    def __call__(self):
        return self.now


def test_cgroup_walk_maps_inodes_to_relative_paths(tmp_path):
    (tmp_path / "system.slice" / "sshd.service").mkdir(parents=True)
    ids = walk_cgroup_ids(str(tmp_path))
    assert ids[os.stat(tmp_path).st_ino] == "/"
    assert ids[os.stat(tmp_path / "system.slice").st_ino] == "/system.slice"
    assert ids[os.stat(tmp_path / "system.slice" / "sshd.service").st_ino] == "/system.slice/sshd.service"


def test_cgroup_misses_rewalk_at_most_once_per_interval(tmp_path):
    clock = FakeClock()
    paths = CgroupPaths(mount=str(tmp_path), rewalk_seconds=10, clock=clock)
    assert paths.path(os.stat(tmp_path).st_ino) == "/"
    assert paths.walks == 1
    for _ in range(100):
        assert paths.path(123456789) == "123456789"
    assert paths.walks == 1

    (tmp_path / "late").mkdir()
    late_id = os.stat(tmp_path / "late").st_ino
    assert paths.path(late_id) == str(late_id)  # too soon to walk again
    clock.now += 10
    assert paths.path(late_id) == "/late"
    assert paths.walks == 2


def test_cgroup_names_survive_removal_and_the_cache_is_bounded(tmp_path):
    clock = FakeClock()
    for name in "abcd":
        (tmp_path / name).mkdir()
    a_id = os.stat(tmp_path / "a").st_ino
    paths = CgroupPaths(mount=str(tmp_path), max_entries=3, rewalk_seconds=10, clock=clock)
    paths.path(a_id)
    assert len(paths._paths) == 3  # root + 4 children walked, bounded to 3

    bounded = CgroupPaths(mount=str(tmp_path), max_entries=100, clock=clock)
    assert bounded.path(a_id) == "/a"
    (tmp_path / "a").rmdir()
    clock.now += 60
    bounded.path(1)  # a miss: re-walks, and "a" is gone from the tree
    assert bounded.walks == 2
    assert bounded.path(a_id) == "/a"


# ---- caches stay bounded, whatever the kernel sends ---------------------------

def test_decoder_caches_stay_bounded_under_many_distinct_keys(tmp_path):
    """The decoders that cache (disk, cgroup) fed far more distinct values than their
    bounds; the others (syscall, errno, ksym, static, ...) keep nothing per value."""
    for minor in range(3 * 1024):
        assert DECODERS["disk"].decode((259 << 20) | minor, u(32), {})
    assert disk_name.cache_info().currsize <= disk_name.cache_info().maxsize == 1024
    clock = FakeClock()
    for name in range(50):
        (tmp_path / f"c{name}").mkdir()
    paths = CgroupPaths(mount=str(tmp_path), max_entries=20, rewalk_seconds=10, clock=clock)
    for cgroup_id in range(1 << 40, (1 << 40) + 20_000):   # ids of no cgroup: misses
        assert paths.path(cgroup_id) == str(cgroup_id)
        clock.now += 0.01
    assert len(paths._paths) <= 20                      # 51 walked, 20 kept
    assert paths.walks <= 1 + 20_000 * 0.01 / 10 + 1    # at most one walk per 10 s of misses


# ---- property: decode() never raises for values that fit --------------------

CANDIDATE_FIELDS = [
    *(FieldKind("int", size, signed=signed) for size in (1, 2, 4, 8) for signed in (False, True)),
    OP, SIGNED_ENUM, FieldKind("enum", 1),
    *(chars(n) for n in (1, 4, 16)),
    *(raw(n) for n in (1, 4, 16)),
]
STATIC_OPTIONS = {"values": {"0": "zero", "1": "one", "127": "max"}}


def fitting_value(field: FieldKind) -> st.SearchStrategy:
    if field.kind == "array":
        return st.binary(min_size=field.size, max_size=field.size)
    bits = 8 * field.size
    if field.signed:
        return st.integers(-(1 << (bits - 1)), (1 << (bits - 1)) - 1)
    return st.integers(0, (1 << bits) - 1)


@pytest.mark.parametrize("name", sorted(DECODERS))
@settings(max_examples=200, deadline=None)
@given(data=st.data())
def test_decode_returns_a_str_for_any_fitting_value(name, data):
    decoder = DECODERS[name]
    options = STATIC_OPTIONS if name == "static" else {}
    fields = [field for field in CANDIDATE_FIELDS if decoder.check(field, options) is None]
    assert fields, f"no candidate field fits {name}"
    field = data.draw(st.sampled_from(fields))
    value = data.draw(fitting_value(field))
    decoded = decoder.decode(value, field, options)
    assert isinstance(decoded, str)
    decoded.encode("utf-8")  # label values must be valid UTF-8
