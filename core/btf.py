"""BTF records → a small type model (pure; the records come from the libbpf boundary).

Only what map keys, values and globals need: integers, enums, arrays, structs/unions.
Typedefs and qualifiers are looked through; pointers become 64-bit unsigned integers
(a pointer in a key is an address, which the `ksym` decoder can name).
"""
from __future__ import annotations

from dataclasses import dataclass

INT_SIGNED, INT_CHAR, INT_BOOL = 1, 2, 4
_LOOK_THROUGH = {"typedef", "const", "volatile", "restrict", "type_tag", "var", "decl_tag"}


@dataclass(frozen=True)
class RawType:
    kind: str           # "int", "struct", "array", ... (linux/btf.h kinds, lower case)
    name: str
    size: int           # sized kinds: int, struct, union, enum, enum64, datasec, float
    ref: int            # referenced type id: ptr, typedef, qualifiers, var, func
    kflag: bool
    items: tuple        # int: (encoding, bit_offset, bits); array: (elem_id, nelems);
                        # struct/union: ((name, type_id, bit_offset, bitfield_bits), ...);
                        # enum: ((name, value), ...); datasec: ((var_id, offset, size), ...)


@dataclass(frozen=True)
class Int:
    name: str
    size: int
    signed: bool = False
    is_char: bool = False


@dataclass(frozen=True)
class Enum:
    name: str
    size: int
    values: tuple[tuple[int, str], ...]
    signed: bool = False


@dataclass(frozen=True)
class Array:
    elem: "Type"
    length: int

    @property
    def size(self) -> int:
        return self.elem.size * self.length

    @property
    def name(self) -> str:
        return f"{self.elem.name}[{self.length}]"


@dataclass(frozen=True)
class Member:
    name: str
    offset: int         # bytes
    type: "Type"
    bitfield: int = 0   # width in bits when the member is a bitfield (not supported as a label)


@dataclass(frozen=True)
class Struct:
    name: str
    size: int
    members: tuple[Member, ...]
    union: bool = False


@dataclass(frozen=True)
class Opaque:
    name: str
    size: int


Type = Int | Enum | Array | Struct | Opaque


class BtfError(ValueError):
    pass


def resolve(records: list, type_id: int, depth: int = 0) -> Type:
    """The type with id `type_id`, typedefs and qualifiers looked through."""
    if depth > 32:
        raise BtfError(f"BTF type {type_id}: reference chain too deep")
    if type_id <= 0 or type_id >= len(records) or records[type_id] is None:
        raise BtfError(f"BTF type id {type_id} does not exist")
    r: RawType = records[type_id]
    if r.kind in _LOOK_THROUGH:
        return resolve(records, r.ref, depth + 1)
    if r.kind == "int":
        enc = r.items[0]
        # clang marks plain `char` signed without the CHAR flag; `unsigned char` (__u8) is bytes.
        return Int(r.name, r.size, bool(enc & INT_SIGNED), bool(enc & INT_CHAR) or r.name == "char")
    if r.kind == "ptr":
        return Int("pointer", 8)
    if r.kind in ("enum", "enum64"):
        return Enum(r.name, r.size, tuple((v, n) for n, v in r.items), r.kflag)
    if r.kind == "array":
        return Array(resolve(records, r.items[0], depth + 1), r.items[1])
    if r.kind in ("struct", "union"):
        members = tuple(Member(name, bit_off // 8, resolve(records, tid, depth + 1), bits)
                        for name, tid, bit_off, bits in r.items)
        return Struct(r.name, r.size, members, r.kind == "union")
    return Opaque(r.name or r.kind, r.size)


def datasec_vars(records: list, section: str) -> dict[str, tuple[int, Type]]:
    """Variables of a data section (".bss", ".data", ".rodata"): name → (offset, type)."""
    for r in records:
        if r is not None and r.kind == "datasec" and r.name == section:
            out = {}
            for var_id, offset, _size in r.items:
                var = records[var_id]
                out[var.name] = (offset, resolve(records, var_id))
            return out
    return {}
