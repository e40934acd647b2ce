"""Where fields sit inside keys and values, from the BTF type model (pure)."""
from __future__ import annotations

from dataclasses import dataclass

from core import btf
from core.decoders import FieldKind


@dataclass(frozen=True)
class Field:
    path: str                  # label name by default: "dev", nested "addr_port"
    offset: int                # bytes from the start of the key
    kind: FieldKind | None     # None: this type can't be a label (bitfield, float, union, ...)
    type_name: str


def field_kind(t: btf.Type) -> FieldKind | None:
    if isinstance(t, btf.Int):
        return FieldKind("int", t.size, t.signed)
    if isinstance(t, btf.Enum):
        return FieldKind("enum", t.size, t.signed, enum_values=tuple((v, n) for v, n in t.values))
    if isinstance(t, btf.Array):
        is_char = isinstance(t.elem, btf.Int) and t.elem.is_char
        return FieldKind("array", t.size, is_char=is_char)
    return None


def flatten_key(t: btf.Type, prefix: str = "", base: int = 0) -> list[Field]:
    """Every label-able field of a key. A scalar key is one field named "key"."""
    if not isinstance(t, btf.Struct) or t.union:
        name = prefix or "key"
        return [Field(name, base, field_kind(t), type_name(t))]
    out = []
    for m in t.members:
        path = f"{prefix}_{m.name}" if prefix else m.name
        if m.bitfield:
            out.append(Field(path, base + m.offset, None, f"{m.bitfield}-bit bitfield"))
        elif isinstance(m.type, btf.Struct) and not m.type.union:
            out.extend(flatten_key(m.type, path, base + m.offset))
        else:
            out.append(Field(path, base + m.offset, field_kind(m.type), type_name(m.type)))
    return out


def member_path(t: btf.Type, path: str) -> tuple[int, btf.Type] | None:
    """(offset, type) of a dotted member path ("stats.bytes") inside a struct, or None."""
    offset = 0
    for part in path.split("."):
        if not isinstance(t, btf.Struct):
            return None
        m = next((m for m in t.members if m.name == part), None)
        if m is None:
            return None
        offset, t = offset + m.offset, m.type
    return offset, t


def type_name(t: btf.Type) -> str:
    if isinstance(t, btf.Struct):
        return f"{'union' if t.union else 'struct'} {t.name}"
    if isinstance(t, btf.Enum):
        return f"enum {t.name}"
    return t.name
