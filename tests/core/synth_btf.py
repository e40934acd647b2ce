"""Hand-built BTF records for tests: the same RawType shapes libbpf's boundary produces.

The records mirror what `exporter.libbpf.BpfObject(path).btf_records()` returns for a clang-built
object (checked against programs/syscalls): index 0 is None (void), arrays have size 0 and
items (elem_id, nelems), struct members carry *bit* offsets, ints carry (encoding, 0, bits),
vars and typedefs/qualifiers point at their type through `ref`, datasecs list
(var_id, offset, size).

Used by tests/core/test_binding.py and (loaded by path) tests/exporter/test_collect.py.
"""
from __future__ import annotations

from core import btf
from core.btf import RawType
from core.manifest import parse as parse_manifest
from exporter.libbpf import MapInfo


class Btf:
    """Builder of a BTF record list. Every add method returns the new type id."""

    def __init__(self):
        self.records: list[RawType | None] = [None]
        # the usual vmlinux.h/clang spellings, behind typedefs like the real thing
        self.u8 = self.typedef("__u8", self.int("unsigned char", 1))
        self.u16 = self.typedef("__u16", self.int("unsigned short", 2))
        self.u32 = self.typedef("__u32", self.int("unsigned int", 4))
        self.u64 = self.typedef("__u64", self.int("unsigned long long", 8))
        self.s32 = self.typedef("__s32", self.int("int", 4, signed=True))
        self.s64 = self.typedef("__s64", self.int("long long", 8, signed=True))
        # clang emits plain char as a signed int named "char", without the BTF_INT_CHAR bit
        self.char = self.int("char", 1, signed=True)
        self.bool = self.typedef("bool", self.int("_Bool", 1, bool_=True))

    def add(self, kind: str, name: str = "", size: int = 0, ref: int = 0, kflag: bool = False,
            items: tuple = ()) -> int:
        self.records.append(RawType(kind, name, size, ref, kflag, items))
        return len(self.records) - 1

    # ---- kinds ----
    def int(self, name: str, size: int, signed: bool = False, char: bool = False,
            bool_: bool = False) -> int:
        enc = (btf.INT_SIGNED if signed else 0) | (btf.INT_CHAR if char else 0) | \
              (btf.INT_BOOL if bool_ else 0)
        return self.add("int", name, size, items=(enc, 0, size * 8))

    def typedef(self, name: str, ref: int) -> int:
        return self.add("typedef", name, ref=ref)

    def const(self, ref: int) -> int:
        return self.add("const", ref=ref)

    def volatile(self, ref: int) -> int:
        return self.add("volatile", ref=ref)

    def const_volatile(self, ref: int) -> int:
        return self.const(self.volatile(ref))

    def ptr(self, ref: int) -> int:
        return self.add("ptr", ref=ref)

    def array(self, elem: int, n: int) -> int:
        return self.add("array", items=(elem, n))

    def enum(self, name: str, values: dict[str, int], size: int = 4, signed: bool = False) -> int:
        return self.add("enum", name, size, kflag=signed, items=tuple(values.items()))

    def struct(self, name: str, members: list, union: bool = False, size: int | None = None) -> int:
        """members: (name, type_id) laid out with C alignment, or
        (name, type_id, bit_offset, bitfield_bits) placed exactly."""
        items, off, align = [], 0, 1
        for m in members:
            if len(m) == 4:
                items.append(tuple(m))
                t = self.resolve(m[1])
                off = max(off, (m[2] + (m[3] or t.size * 8) + 7) // 8)
                continue
            mname, tid = m
            t = self.resolve(tid)
            a = _align(t)
            align = max(align, a)
            if union:
                items.append((mname, tid, 0, 0))
                off = max(off, t.size)
            else:
                off = (off + a - 1) // a * a
                items.append((mname, tid, off * 8, 0))
                off += t.size
        if size is None:
            size = (off + align - 1) // align * align
        return self.add("union" if union else "struct", name, size, items=tuple(items))

    def var(self, name: str, type_id: int) -> int:
        return self.add("var", name, ref=type_id)

    def datasec(self, name: str, variables: list[tuple[str, int]]) -> dict[str, int]:
        """A data section holding `variables` (name, type_id) laid out in order.
        -> name → offset inside the section."""
        items, offsets, off = [], {}, 0
        for vname, tid in variables:
            t = self.resolve(tid)
            a = _align(t)
            off = (off + a - 1) // a * a
            items.append((self.var(vname, tid), off, t.size))
            offsets[vname] = off
            off += t.size
        self.add("datasec", name, off, items=tuple(items))
        return offsets

    # ---- convenience ----
    def resolve(self, type_id: int) -> btf.Type:
        return btf.resolve(self.records, type_id)

    def size(self, type_id: int) -> int:
        return self.resolve(type_id).size

    def map(self, name: str, type_: str, key: int, value: int, max_entries: int = 1024) -> MapInfo:
        return MapInfo(name, type_, self.size(key), self.size(value), max_entries, key, value)


def _align(t: btf.Type) -> int:
    if isinstance(t, btf.Array):
        return _align(t.elem)
    if isinstance(t, btf.Struct):
        return max((_align(m.type) for m in t.members), default=1)
    return max(1, min(t.size, 8))


HEADER = '''
name = "demo"
version = "1.0.0"
description = "test program"
license = "GPL-2.0"
'''


def manifest(body: str, header: str = HEADER, path: str = "programs/demo/manifest.toml"):
    """Parse header + body; the manifest must be valid."""
    m, problems = parse_manifest(header + body, path)
    assert not problems, [str(p) for p in problems]
    return m


def maps_dict(*infos: MapInfo) -> dict[str, MapInfo]:
    return {i.name: i for i in infos}
